package cli

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/labcloud/labcloud/api"
	"github.com/labcloud/labcloud/api/sigv4"
)

func adminCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "admin",
		Usage: "administer the labcloud install (accounts, OIDC provider keys: the admin account's root keys) and run a lab token issuer",
		Subcommands: append([]*ucli.Command{{
			Name:      "create-account",
			Usage:     "create a new account with its own root access key",
			ArgsUsage: "NAME",
			Description: `Creates an account (a new 12-digit id) and prints its root access key as a
profile named NAME in the aws shared-credentials format, with region and
endpoint_url, ready to append to a credentials file:

   labcloud admin create-account team-b >> ~/.aws/credentials
   aws --profile team-b sts get-caller-identity

Accounts are isolated from each other; cross-account access works through
role trust policies, as in AWS.`,
			Action: createAccount,
		}}, federationCommands()...),
	}
}

func createAccount(c *ucli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("usage: labcloud admin create-account NAME")
	}
	cfg, err := awsConfig(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("reading credentials: %w", err)
	}
	form := url.Values{"Action": {"CreateAccount"}, "Version": {api.AdminVersion}, "AccountName": {c.Args().First()}}
	body := form.Encode()
	endpoint := strings.TrimRight(*cfg.BaseEndpoint, "/")
	req, err := http.NewRequestWithContext(ctx, "POST", endpoint+"/", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	key := sigv4.Key{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: creds.SessionToken}
	if err := sigv4.Sign(req, []byte(body), key, cfg.Region, api.ServiceLabcloud, time.Now()); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		if xml.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s: %s", e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, data)
	}
	var out struct {
		Result struct {
			AccountID       string `xml:"AccountId"`
			AccountName     string `xml:"AccountName"`
			AccessKeyID     string `xml:"AccessKeyId"`
			SecretAccessKey string `xml:"SecretAccessKey"`
		} `xml:"CreateAccountResult"`
	}
	if err := xml.Unmarshal(data, &out); err != nil {
		return fmt.Errorf("parsing response: %w", err)
	}
	r := out.Result
	fmt.Fprintf(c.App.Writer, "# labcloud account %s (%s): root access key\n[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\nregion = %s\nendpoint_url = %s\n",
		r.AccountID, r.AccountName, r.AccountName, r.AccessKeyID, r.SecretAccessKey, cfg.Region, endpoint)
	return nil
}
