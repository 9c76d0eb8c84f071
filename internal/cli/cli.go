// Package cli is the labcloud command line: friendly verbs over the AWS API
// of a running labcloudd, using aws-sdk-go-v2 clients pointed at its
// endpoint.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	ucli "github.com/urfave/cli/v2"

	"github.com/labcloud/labcloud/internal/version"
)

// DefaultStateDir is where labcloudd keeps admin-credentials by default.
const DefaultStateDir = "/var/lib/labcloud"

// App returns the labcloud command.
func App() *ucli.App {
	return &ucli.App{
		Name:  "labcloud",
		Usage: "use a labcloud lab cloud (EC2, VPC, EBS, IAM on this machine)",
		Description: `labcloud talks to a running labcloudd through the same AWS API that the aws
CLI and boto3 use. Credentials come from --credentials-file, else
<state-dir>/admin-credentials (written by labcloudd, profile "labcloud") when it
is readable, else ~/.aws/credentials. The endpoint comes from --endpoint, else the
profile's endpoint_url, else <state-dir>/endpoint. Errors print the AWS error
code and message and exit non-zero.`,
		Version: version.Version,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "endpoint", Usage: "API endpoint URL, e.g. http://127.0.0.1:7420", EnvVars: []string{"LABCLOUD_ENDPOINT"}},
			&ucli.StringFlag{Name: "profile", Value: "labcloud", Usage: "profile in the credentials file", EnvVars: []string{"LABCLOUD_PROFILE"}},
			&ucli.StringFlag{Name: "region", Usage: "region (default: the profile's region)", EnvVars: []string{"LABCLOUD_REGION"}},
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "output format: table or json"},
			&ucli.StringFlag{Name: "credentials-file", Usage: "aws shared-credentials file to read", EnvVars: []string{"LABCLOUD_CREDENTIALS_FILE"}},
			&ucli.StringFlag{Name: "state-dir", Value: DefaultStateDir, Usage: "labcloudd's state dir, to find admin-credentials and endpoint", EnvVars: []string{"LABCLOUD_STATE_DIR"}},
		},
		Before: func(c *ucli.Context) error {
			if o := c.String("output"); o != "table" && o != "json" {
				return fmt.Errorf("--output %q: use table or json", o)
			}
			return nil
		},
		Commands: []*ucli.Command{
			{
				Name:   "regions",
				Usage:  "list the regions (ec2 DescribeRegions)",
				Action: regions,
			},
			{
				Name:      "zones",
				Usage:     "list the availability zones of the region (ec2 DescribeAvailabilityZones)",
				ArgsUsage: "[ZONE...]",
				Action:    zones,
			},
			adminCommand(),
			imageCommand(),
			sshCommand(),
			consoleCommand(),
			imagesCommand(),
			snapshotsCommand(),
			{
				Name:  "version",
				Usage: "print the CLI version",
				Action: func(c *ucli.Context) error {
					fmt.Fprintf(c.App.Writer, "labcloud %s\n", version.Version)
					return nil
				},
			},
		},
	}
}

// awsConfig resolves credentials, region and endpoint as the help text says.
func awsConfig(c *ucli.Context) (aws.Config, error) {
	ctx := c.Context
	stateDir := c.String("state-dir")
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithSharedConfigProfile(c.String("profile"))}
	credFile := c.String("credentials-file")
	if credFile == "" {
		p := filepath.Join(stateDir, "admin-credentials")
		if f, err := os.Open(p); err == nil {
			f.Close()
			credFile = p
		}
	}
	if credFile != "" {
		opts = append(opts, awsconfig.WithSharedCredentialsFiles([]string{credFile}))
	}
	if r := c.String("region"); r != "" {
		opts = append(opts, awsconfig.WithRegion(r))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, fmt.Errorf("loading credentials (profile %q): %w", c.String("profile"), err)
	}
	if ep := c.String("endpoint"); ep != "" {
		cfg.BaseEndpoint = aws.String(ep)
	} else if cfg.BaseEndpoint == nil {
		data, err := os.ReadFile(filepath.Join(stateDir, "endpoint"))
		if err != nil {
			return cfg, fmt.Errorf("no endpoint: pass --endpoint, or set endpoint_url in the profile, or run labcloudd (it writes %s)", filepath.Join(stateDir, "endpoint"))
		}
		cfg.BaseEndpoint = aws.String(strings.TrimSpace(string(data)))
	}
	if cfg.Region == "" {
		return cfg, errors.New("no region: pass --region or set region in the profile")
	}
	return cfg, nil
}

func ec2Client(c *ucli.Context) (*ec2.Client, error) {
	cfg, err := awsConfig(c)
	if err != nil {
		return nil, err
	}
	return ec2.NewFromConfig(cfg), nil
}

func regions(c *ucli.Context) error {
	cl, err := ec2Client(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	out, err := cl.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	if err != nil {
		return apiError(err)
	}
	rows := [][]string{}
	for _, r := range out.Regions {
		rows = append(rows, []string{aws.ToString(r.RegionName), aws.ToString(r.Endpoint), aws.ToString(r.OptInStatus)})
	}
	return render(c, out.Regions, []string{"REGION", "ENDPOINT", "OPT-IN"}, rows)
}

func zones(c *ucli.Context) error {
	cl, err := ec2Client(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	out, err := cl.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{ZoneNames: c.Args().Slice()})
	if err != nil {
		return apiError(err)
	}
	rows := [][]string{}
	for _, z := range out.AvailabilityZones {
		rows = append(rows, []string{aws.ToString(z.ZoneName), aws.ToString(z.ZoneId), aws.ToString(z.RegionName), string(z.State)})
	}
	return render(c, out.AvailabilityZones, []string{"ZONE", "ZONE-ID", "REGION", "STATE"}, rows)
}

// render prints v as JSON or the rows as an aligned table.
func render(c *ucli.Context, v any, header []string, rows [][]string) error {
	w := c.App.Writer
	if c.String("output") == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return table(w, header, rows)
}

func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// apiError turns an SDK error into "Code: message" as the aws CLI shows it.
func apiError(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return fmt.Errorf("%s: %s", ae.ErrorCode(), ae.ErrorMessage())
	}
	return err
}
