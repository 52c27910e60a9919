package samcli_test

import (
	"debug/elf"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiehook/kiehook/infra/samcli"
)

// samBuild is what `sam build` reads: the template's makefile builds, and
// samconfig's build flag named flag.
func samBuild(tb testing.TB, flag string) ([]samcli.Build, bool) {
	tb.Helper()
	set, err := samcli.BuildFlag(readFile(tb, "../../samconfig.toml"), flag)
	if err != nil {
		tb.Fatal(err)
	}
	builds, err := kiehookTemplate(tb).MakefileBuilds()
	if err != nil {
		tb.Fatal(err)
	}
	return builds, set
}

// TestSamBuildBuildsEveryFunction builds each function as the README's
// `sam build` does, with the samconfig.toml it reads: a scratch copy of
// CodeUri unless samconfig builds in source.
func TestSamBuildBuildsEveryFunction(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles every function")
	}
	builds, inSource := samBuild(t, "build_in_source")
	if len(builds) != 6 {
		t.Fatalf("%d makefile builds, want the 6 functions", len(builds))
	}
	for _, b := range builds {
		t.Run(b.Function+" builds into an arm64 Linux bootstrap", func(t *testing.T) {
			artifacts := t.TempDir()
			if err := b.Run("../..", t.TempDir(), artifacts, inSource); err != nil {
				t.Fatal(err)
			}
			f, err := elf.Open(filepath.Join(artifacts, "bootstrap"))
			if err != nil {
				t.Fatalf("bootstrap: %v", err)
			}
			defer f.Close()
			if f.Machine != elf.EM_AARCH64 || f.Type != elf.ET_EXEC {
				t.Errorf("bootstrap is %v %v, want an arm64 executable", f.Machine, f.Type)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("bootstrap is dynamically linked; provided.al2023 runs it alone")
				}
			}
		})
	}
}

func TestSamconfigBuildInSource(t *testing.T) {
	for _, tt := range []struct {
		name, samconfig string
		want, fails     bool
	}{
		{"no setting builds in scratch", "[default.build.parameters]\ncached = true\n", false, false},
		{"build_in_source = true builds in source", "[default.build.parameters]\nbuild_in_source = true\n", true, false},
		{"another command's setting does not count", "[default.deploy.parameters]\nbuild_in_source = true\n", false, false},
		{"a value that is not a boolean is an error", "[default.build.parameters]\nbuild_in_source = yes\n", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := samcli.BuildFlag([]byte(tt.samconfig), "build_in_source")
			if got != tt.want || (err != nil) != tt.fails {
				t.Errorf("BuildFlag = %v, %v", got, err)
			}
		})
	}
}

// The SAM CLI's build cache keys a function on the checksum of its CodeUri
// folder (samcli/lib/build/build_strategy.py, CachedBuildStrategy): a
// cached build whose folder lacks go.mod and go.sum would keep the old
// binaries after a dependency bump alone.
func TestTheBuildCacheCannotShipStaleBinaries(t *testing.T) {
	builds, cached := samBuild(t, "cached")
	for _, b := range builds {
		for _, file := range []string{"go.mod", "go.sum"} {
			if _, err := os.Stat(filepath.Join("../..", b.Source, file)); err != nil && cached {
				t.Errorf("%s: samconfig caches builds, and its CodeUri %q does not hold %s", b.Function, b.Source, file)
			}
		}
	}
}
