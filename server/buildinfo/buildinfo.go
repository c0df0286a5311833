// Package buildinfo says which Annals a binary is: the version it was
// stamped with or its module version, and the VCS revision Go recorded when
// it was built from a checkout.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Info describes one build.
type Info struct {
	Version   string // stamped (-ldflags -X main.version=...), else the module's, else "dev"
	Revision  string // VCS revision of a build from a checkout; "" when unknown
	Time      string // VCS commit time, RFC 3339; "" when unknown
	Modified  bool   // the checkout had uncommitted changes
	GoVersion string
}

// Read returns the build's Info; stamped, if not "" or "dev", wins over the
// module version recorded by the Go toolchain.
func Read(stamped string) Info {
	bi, ok := debug.ReadBuildInfo()
	return fromBuildInfo(stamped, bi, ok)
}

func fromBuildInfo(stamped string, bi *debug.BuildInfo, ok bool) Info {
	info := Info{Version: stamped, GoVersion: runtime.Version()}
	if ok {
		if (info.Version == "" || info.Version == "dev") && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.time":
				info.Time = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	return info
}

// String is the one-line form "annals version" prints.
func (i Info) String() string {
	s := "annals " + i.Version
	if i.Revision != "" {
		s += " (revision " + i.Revision
		if i.Modified {
			s += ", modified"
		}
		if i.Time != "" {
			s += ", " + i.Time
		}
		s += ")"
	}
	return s + " " + i.GoVersion
}
