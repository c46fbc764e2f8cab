package testkit

import (
	"fmt"
	"strings"

	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// ConfigTOML is the start of a configuration file (the format of deploy/chronicle.toml):
// the [tiers] section for roots and, when remote names an endpoint (S3Config gives a
// versitygw server's), a [remote] section with its endpoint, region and keys, path-style.
// It ends inside its last section, so that the caller may add that section's other lines
// before its own sections.
func ConfigTOML(roots layout.Roots, remote objstore.Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[tiers]\nhot = %q\nwarm = %q\ncold = %q\nremote = %q\n", roots.Hot, roots.Warm, roots.Cold, roots.Remote)
	if roots.AllowSharedRoots {
		b.WriteString("allow_shared_roots = true\n")
	}
	if remote.Endpoint != "" {
		fmt.Fprintf(&b, "\n[remote]\nendpoint = %q\nregion = %q\naccess_key = %q\nsecret_key = %q\npath_style = true\n",
			remote.Endpoint, remote.Region, remote.AccessKey, remote.SecretKey)
	}
	return b.String()
}
