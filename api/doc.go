// Package api is labcloud's AWS front door: one HTTP endpoint for EC2, IAM
// and STS. A request goes
//
//	HTTP → SigV4 (api/sigv4) → authorization hook → handler → domain package → store
//
// and the reply is encoded in the service's protocol (api/protocol): the
// EC2 protocol for ec2, awsQuery for iam and sts. The service is told by
// the SigV4 credential scope. api/ turns AWS requests into domain calls
// and domain errors into AWS error codes in exactly one function
// (wireError); domain packages never import api/.
package api
