// Package samcli applies the SAM CLI's rules to kiehook's own files, so
// that tests hold the template, samconfig.toml, the Makefile and
// events/env.json to what the SAM CLI really does, without the SAM CLI
// (each rule names the source file it follows):
//
//   - how `sam build` runs a makefile build (build.go);
//   - which questions `sam deploy --guided` asks (GuidedPrompts);
//   - a function's environment under `sam local invoke --env-vars`: the
//     variables are the function's Environment.Variables over the
//     template's Globals, with intrinsic functions resolved as the SAM CLI
//     resolves them locally: parameters take their defaults, conditions are
//     evaluated, !Ref to a resource is its logical id, !Ref AWS::NoValue
//     drops the variable, and anything left unresolved becomes ""; the
//     --env-vars file overrides only variables the template declares,
//     from the function's own section and its "Parameters" section (for
//     every function); any other is dropped without a word (the SAM CLI's
//     maintainers in aws-sam-cli issues #381, #1553 and #6145).
package samcli

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kiehook/kiehook/infra/yamlnode"
)

// pseudo are the values the SAM CLI gives pseudo parameters locally.
var pseudo = map[string]string{
	"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
	"AWS::StackName": "local", "AWS::StackId": "local", "AWS::URLSuffix": "amazonaws.com",
}

// Template is a parsed SAM template.
type Template struct {
	root   yamlnode.Node
	params map[string]string
}

// Parse reads a SAM template; parameters take their defaults.
func Parse(raw []byte) (*Template, error) {
	root, err := yamlnode.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	t := &Template{root: root, params: map[string]string{}}
	params := root.At("Parameters")
	for _, name := range params.Keys() {
		t.params[name] = params.At(name, "Default").Str()
	}
	return t, nil
}

// Environment is what a function sees under `sam local invoke --env-vars`
// with envVars (the file's JSON): the resolved template variables with the
// file's overrides; dropped are the file's variables for the function that
// the template does not declare, which the SAM CLI silently ignores.
func (t *Template) Environment(function string, envVars []byte) (env map[string]string, dropped []string, err error) {
	if !t.root.At("Resources", function).OK() {
		return nil, nil, fmt.Errorf("template has no resource %s", function)
	}
	env = map[string]string{}
	for _, vars := range []yamlnode.Node{t.root.At("Globals", "Function", "Environment", "Variables"), t.root.At("Resources", function, "Properties", "Environment", "Variables")} {
		for _, name := range vars.Keys() {
			value, present, err := t.resolve(vars.At(name))
			if err != nil {
				return nil, nil, fmt.Errorf("%s.%s: %w", function, name, err)
			}
			if present {
				env[name] = value
			} else {
				delete(env, name)
			}
		}
	}
	var file map[string]map[string]string
	if err := json.Unmarshal(envVars, &file); err != nil {
		return nil, nil, fmt.Errorf("env vars file: %w", err)
	}
	for _, section := range []string{"Parameters", function} {
		for name, value := range file[section] {
			if _, declared := env[name]; !declared {
				if section == function {
					dropped = append(dropped, name)
				}
				continue
			}
			env[name] = value
		}
	}
	slices.Sort(dropped)
	return env, dropped, nil
}

// resolve is a value as the SAM CLI resolves it locally; present is false
// for AWS::NoValue.
func (t *Template) resolve(n yamlnode.Node) (value string, present bool, err error) {
	switch n.Tag {
	case "!Ref":
		return t.ref(n.Value)
	case "!If":
		items := n.Items()
		if len(items) != 3 {
			return "", false, fmt.Errorf("!If needs three items")
		}
		ok, err := t.condition(items[0].Value)
		if err != nil {
			return "", false, err
		}
		if ok {
			return t.resolve(items[1])
		}
		return t.resolve(items[2])
	case "!Sub":
		return t.sub(n.Value), true, nil
	case "!GetAtt", "!Join", "!Select", "!ImportValue", "!FindInMap", "!GetAZs", "!Split", "!Base64", "!Cidr":
		return "", true, nil // unresolved locally: an empty string
	}
	if n.Kind != yaml.ScalarNode {
		return "", true, nil
	}
	return n.Value, true, nil
}

func (t *Template) ref(name string) (string, bool, error) {
	if name == "AWS::NoValue" {
		return "", false, nil
	}
	if v, ok := pseudo[name]; ok {
		return v, true, nil
	}
	if v, ok := t.params[name]; ok {
		return v, true, nil
	}
	if t.root.At("Resources", name).OK() {
		return name, true, nil // a resource is its logical id locally
	}
	return "", false, fmt.Errorf("!Ref %s resolves to nothing", name)
}

var subVar = regexp.MustCompile(`\$\{([^}!]+)\}`)

func (t *Template) sub(s string) string {
	return subVar.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.Contains(name, ".") {
			return "" // an attribute: unresolved locally
		}
		v, _, _ := t.ref(name)
		return v
	})
}

// condition evaluates the named condition with the parameters' defaults.
func (t *Template) condition(name string) (bool, error) {
	c := t.root.At("Conditions", name)
	if !c.OK() {
		return false, fmt.Errorf("no condition %s", name)
	}
	return t.eval(c)
}

func (t *Template) eval(n yamlnode.Node) (bool, error) {
	items := n.Items()
	switch n.Tag {
	case "!Equals":
		if len(items) != 2 {
			return false, fmt.Errorf("!Equals needs two items")
		}
		a, _, err := t.resolve(items[0])
		if err != nil {
			return false, err
		}
		b, _, err := t.resolve(items[1])
		return a == b, err
	case "!Not":
		if len(items) != 1 {
			return false, fmt.Errorf("!Not needs one item")
		}
		v, err := t.eval(items[0])
		return !v, err
	case "!And", "!Or":
		all := n.Tag == "!And"
		for _, i := range items {
			v, err := t.eval(i)
			if err != nil {
				return false, err
			}
			if v != all {
				return v, nil
			}
		}
		return all, nil
	case "!Condition":
		return t.condition(n.Value)
	}
	return false, fmt.Errorf("condition %s %q is not one the SAM CLI evaluates", n.Tag, n.Value)
}

// Prompt is one question of `sam deploy --guided`.
type Prompt struct {
	Text     string // as the SAM CLI prints it, before the default
	MustType bool   // a NoEcho parameter: no default, so Enter is refused
}

// GuidedPrompts are the questions `sam deploy --guided` asks, in order,
// when Enter (or y, where only y goes on) answers each, as
// samcli/commands/deploy/guided_context.py (guided_prompts,
// prompt_parameters, prompt_authorization) and auth_utils.py ask them:
// every parameter in template order, then one question per Function URL
// whose AuthType is NONE once the parameters' defaults are resolved.
func (t *Template) GuidedPrompts() ([]Prompt, error) {
	prompts := []Prompt{{Text: "Stack Name"}, {Text: "AWS Region"}}
	params := t.root.At("Parameters")
	for _, name := range params.Keys() {
		prompts = append(prompts, Prompt{Text: "Parameter " + name, MustType: params.At(name, "NoEcho").Str() == "true"})
	}
	prompts = append(prompts, Prompt{Text: "Confirm changes before deploy"}, Prompt{Text: "Allow SAM CLI IAM role creation"}, Prompt{Text: "Disable rollback"})
	resources := t.root.At("Resources")
	for _, name := range resources.Keys() {
		url := resources.At(name, "Properties", "FunctionUrlConfig")
		if resources.At(name, "Type").Str() != "AWS::Serverless::Function" || !url.OK() {
			continue
		}
		auth, _, err := t.resolve(url.At("AuthType"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if auth == "NONE" {
			prompts = append(prompts, Prompt{Text: name + " Function Url has no authentication. Is this okay?"})
		}
	}
	return append(prompts, Prompt{Text: "Save arguments to configuration file"}, Prompt{Text: "SAM configuration file"}, Prompt{Text: "SAM configuration environment"}), nil
}
