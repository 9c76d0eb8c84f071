// Package version holds the build's version, set at link time by the
// Makefile (-ldflags "-X github.com/labcloud/labcloud/internal/version.Version=…").
package version

// Version is the labcloud release or git description of this build.
var Version = "dev"
