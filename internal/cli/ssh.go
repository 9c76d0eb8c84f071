package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ucli "github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func sshCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "ssh",
		Usage:     "ssh into an instance through its VPC (run on the lab server, as root)",
		ArgsUsage: "INSTANCE-ID [COMMAND...]",
		Description: `Enters the network namespace of the instance's VPC (its router) and runs
ssh to the instance's private IP. The key is --identity, else
~/.labcloud/keys/KEYNAME.pem for the instance's key pair (save the KeyMaterial
of create-key-pair there, mode 0600). Host keys are remembered per instance id
in ~/.labcloud/known_hosts.`,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "identity", Aliases: []string{"i"}, Usage: "private key file"},
			&ucli.StringFlag{Name: "user", Aliases: []string{"l"}, Value: "ec2-user", Usage: "login name"},
			&ucli.StringFlag{Name: "net-prefix", Value: "lc", Usage: "labcloudd's network.namePrefix", EnvVars: []string{"LABCLOUD_NET_PREFIX"}},
		},
		Action: sshAction,
	}
}

func consoleCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "console",
		Usage:     "print an instance's serial console output (ec2 GetConsoleOutput)",
		ArgsUsage: "INSTANCE-ID",
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return errors.New("usage: labcloud console INSTANCE-ID")
			}
			cl, err := ec2Client(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
			defer cancel()
			out, err := cl.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(c.Args().First())})
			if err != nil {
				return apiError(err)
			}
			text, err := base64.StdEncoding.DecodeString(aws.ToString(out.Output))
			if err != nil {
				return fmt.Errorf("console output is not base64: %w", err)
			}
			_, err = c.App.Writer.Write(text)
			return err
		},
	}
}

func sshAction(c *ucli.Context) error {
	if c.NArg() < 1 {
		return errors.New("usage: labcloud ssh INSTANCE-ID [COMMAND...]")
	}
	id := c.Args().First()
	cl, err := ec2Client(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	out, err := cl.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return apiError(err)
	}
	if len(out.Reservations) == 0 || len(out.Reservations[0].Instances) == 0 {
		return fmt.Errorf("instance %s not found", id)
	}
	in := out.Reservations[0].Instances[0]
	if in.State == nil || in.State.Name != "running" || aws.ToString(in.PrivateIpAddress) == "" {
		return fmt.Errorf("instance %s is not running (state %v): start it first", id, in.State)
	}
	key := c.String("identity")
	if key == "" {
		if in.KeyName == nil {
			return fmt.Errorf("instance %s was launched without a key pair: nothing to log in with", id)
		}
		home, _ := os.UserHomeDir()
		key = filepath.Join(home, ".labcloud", "keys", aws.ToString(in.KeyName)+".pem")
		if _, err := os.Stat(key); err != nil {
			return fmt.Errorf("no private key for key pair %q: pass --identity FILE or save it as %s", aws.ToString(in.KeyName), key)
		}
	}
	sshPath, err := exec.LookPath("ssh")
	if err != nil {
		return errors.New("ssh not found: install openssh-client")
	}
	nsPath := "/var/run/netns/" + c.String("net-prefix") + "-" + aws.ToString(in.VpcId)
	// Private IPs repeat across VPCs and accounts (every default VPC is
	// 172.31.0.0/16), so host keys are remembered per instance id in
	// labcloud's own known_hosts, never under the IP in ~/.ssh/known_hosts.
	home, _ := os.UserHomeDir()
	known := filepath.Join(home, ".labcloud", "known_hosts")
	if err := os.MkdirAll(filepath.Dir(known), 0o700); err != nil {
		return err
	}
	args := []string{"ssh", "-i", key, "-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=" + known,
		"-o", "HostKeyAlias=" + id, "-l", c.String("user"), aws.ToString(in.PrivateIpAddress)}
	args = append(args, c.Args().Tail()...)

	// Enter the VPC namespace on this thread and replace the process with
	// ssh: execve keeps the calling thread's network namespace.
	runtime.LockOSThread()
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the VPC namespace %s (are you root on the lab server?): %w", nsPath, err)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering the VPC namespace: %w", err)
	}
	return syscall.Exec(sshPath, args, os.Environ())
}
