// Command labcloud is the friendly CLI for a labcloud install. It talks to
// the same AWS API as the aws CLI (through aws-sdk-go-v2) and prints tables
// or JSON.
package main

import (
	"fmt"
	"os"

	"github.com/labcloud/labcloud/internal/cli"
)

func main() {
	if err := cli.App().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "labcloud:", err)
		os.Exit(1)
	}
}
