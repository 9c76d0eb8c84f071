package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ucli "github.com/urfave/cli/v2"

	"github.com/labcloud/labcloud/imagestore/builder"
)

func imageCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "image",
		Usage: "build and register labcloud's own AMIs (on the lab server, as root)",
		Subcommands: []*ucli.Command{{
			Name:      "build",
			Usage:     "build an image (labcloud-tiny, debian-12) from Debian packages, and register it as a public AMI",
			ArgsUsage: "labcloud-tiny|debian-12",
			Description: `Builds the image into <state-dir>/build/NAME with the package cache
` + builder.DefaultCacheDir + `. With --register it then registers it (ec2
RegisterImage, ImageLocation file://…/manifest.json) as a public AMI owned by
the admin account, and prints the AMI id. Run it as root on the lab server,
with the admin credentials:

   sudo labcloud image build labcloud-tiny --register`,
			Flags: []ucli.Flag{
				&ucli.BoolFlag{Name: "register", Usage: "register the image as a public AMI after building it"},
				&ucli.StringFlag{Name: "name", Usage: "AMI name (default: the image's name)"},
				&ucli.StringFlag{Name: "cache-dir", Value: builder.DefaultCacheDir, Usage: "package cache of the builder"},
			},
			Action: imageBuild,
		}},
	}
}

func imagesCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "images",
		Usage:     "list the AMIs you can launch (ec2 DescribeImages)",
		ArgsUsage: "[AMI-ID...]",
		Action:    images,
	}
}

func imageBuild(c *ucli.Context) error {
	// urfave/cli stops parsing flags at the first argument; accept
	// --register after the name too, as the documented form puts it there.
	register := c.Bool("register")
	var args []string
	for _, a := range c.Args().Slice() {
		if a == "--register" || a == "-register" {
			register = true
			continue
		}
		args = append(args, a)
	}
	build := builder.BuildTiny
	switch {
	case len(args) == 1 && args[0] == builder.TinyName:
	case len(args) == 1 && args[0] == builder.Debian12Name:
		build = builder.BuildDebian12
	default:
		return fmt.Errorf("usage: labcloud image build %s|%s [--register]", builder.TinyName, builder.Debian12Name)
	}
	out := filepath.Join(c.String("state-dir"), "build", args[0])
	logf := func(format string, args ...any) { fmt.Fprintf(c.App.ErrWriter, format+"\n", args...) }
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Minute)
	defer cancel()
	res, err := build(ctx, builder.BuildInput{OutDir: out, CacheDir: c.String("cache-dir"), Logf: logf})
	if err != nil {
		return fmt.Errorf("building %s: %w", args[0], err)
	}
	if !register {
		fmt.Fprintf(c.App.Writer, "%s\n", res.ManifestPath)
		return nil
	}
	manifest, err := filepath.Abs(res.ManifestPath)
	if err != nil {
		return err
	}
	if _, err := os.Stat(manifest); err != nil {
		return err
	}
	cl, err := ec2Client(c)
	if err != nil {
		return err
	}
	name := c.String("name")
	if name == "" {
		name = res.Manifest.Name
	}
	desc := res.Manifest.Description
	reg, err := cl.RegisterImage(ctx, &ec2.RegisterImageInput{
		Name: aws.String(name), ImageLocation: aws.String("file://" + manifest), Description: nonEmpty(desc),
		Architecture: "x86_64", VirtualizationType: aws.String("hvm"), RootDeviceName: aws.String("/dev/xvda"),
	})
	if err != nil {
		return apiError(err)
	}
	fmt.Fprintln(c.App.Writer, aws.ToString(reg.ImageId))
	return nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

func images(c *ucli.Context) error {
	cl, err := ec2Client(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	out, err := cl.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: c.Args().Slice()})
	if err != nil {
		return apiError(err)
	}
	rows := [][]string{}
	for _, im := range out.Images {
		size := ""
		for _, m := range im.BlockDeviceMappings {
			if m.Ebs != nil && aws.ToString(m.DeviceName) == aws.ToString(im.RootDeviceName) {
				size = fmt.Sprintf("%d GiB", aws.ToInt32(m.Ebs.VolumeSize))
			}
		}
		rows = append(rows, []string{aws.ToString(im.ImageId), aws.ToString(im.Name), string(im.State), aws.ToString(im.OwnerId),
			fmt.Sprint(aws.ToBool(im.Public)), string(im.Architecture), size, aws.ToString(im.CreationDate)})
	}
	return render(c, out.Images, []string{"IMAGE-ID", "NAME", "STATE", "OWNER", "PUBLIC", "ARCH", "ROOT", "CREATED"}, rows)
}
