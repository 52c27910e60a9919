package samcli

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build is how `sam build` builds one function of BuildMethod makefile,
// as samcli/lib/build/app_builder.py (_build_function) and
// aws_lambda_builders/workflows/custom_make/workflow.py do it.
type Build struct {
	Function string // the logical id: the make target is build-<Function>
	Source   string // CodeUri, or Metadata.ProjectRootDirectory: what is copied to scratch
	Makefile string // Metadata.ContextPath's Makefile, or Source's
}

// MakefileBuilds are the template's makefile builds, with paths relative
// to the template's folder.
func (t *Template) MakefileBuilds() ([]Build, error) {
	var builds []Build
	resources := t.root.At("Resources")
	for _, name := range resources.Keys() {
		r := resources.At(name)
		if r.At("Type").Str() != "AWS::Serverless::Function" || r.At("Metadata", "BuildMethod").Str() != "makefile" {
			continue
		}
		if r.At("Metadata", "WorkingDirectory").OK() {
			return nil, fmt.Errorf("%s: Metadata.WorkingDirectory is a case this check does not follow", name)
		}
		b := Build{Function: name, Source: r.At("Properties", "CodeUri").Str()}
		if b.Source == "" {
			b.Source = t.root.At("Globals", "Function", "CodeUri").Str()
		}
		if root := r.At("Metadata", "ProjectRootDirectory").Str(); root != "" {
			b.Source = root
		}
		b.Makefile = filepath.Join(b.Source, "Makefile")
		if context := r.At("Metadata", "ContextPath").Str(); context != "" {
			b.Makefile = filepath.Join(context, "Makefile")
		}
		builds = append(builds, b)
	}
	return builds, nil
}

// excluded are the names the makefile workflow leaves out of its scratch
// copy (CustomMakeWorkflow.EXCLUDED_FILES).
var excluded = map[string]bool{".aws-sam": true, ".git": true}

// Run builds b from the template's folder base into artifacts: in a
// scratch copy of Source unless inSource (the --build-in-source flag, or
// samconfig's build_in_source), then `make --makefile <Makefile>
// build-<Function>` there with ARTIFACTS_DIR set.
func (b Build) Run(base, scratch, artifacts string, inSource bool) error {
	base, err := filepath.Abs(base) // the SAM CLI resolves every path
	if err != nil {
		return err
	}
	source := filepath.Join(base, b.Source)
	dir := source
	if !inSource {
		dir = scratch
		if err := copyTree(source, scratch); err != nil {
			return err
		}
	}
	cmd := exec.Command("make", "--makefile", filepath.Join(base, b.Makefile), "build-"+b.Function)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ARTIFACTS_DIR="+artifacts)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("make build-%s: %w\n%s", b.Function, err, out)
	}
	return nil
}

func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if excluded[d.Name()] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(from, path)
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, raw, 0o644)
	})
}

// BuildFlag is a boolean of samconfig.toml's [default.build.parameters]
// (build_in_source, cached), as `sam build` reads it; false when unset.
func BuildFlag(samconfig []byte, name string) (bool, error) {
	section := ""
	lines := bufio.NewScanner(bytes.NewReader(samconfig))
	for lines.Scan() {
		line := strings.TrimSpace(lines.Text())
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if section == "[default.build.parameters]" && ok && strings.TrimSpace(key) == name {
			switch strings.TrimSpace(value) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
			return false, fmt.Errorf("samconfig.toml: %s is neither true nor false", name)
		}
	}
	return false, lines.Err()
}
