// Package imagestore keeps AMIs: read-only qcow2 base images registered by
// the admin or created from instances, their catalogue in state, and the
// builders of labcloud's own images (labcloud-tiny, debian-12) from Debian
// packages.
package imagestore
