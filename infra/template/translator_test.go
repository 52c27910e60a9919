package template

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// transformScript is what CloudFormation does with the template on
// deploy: the SAM translator (samtranslator, which cfn-lint brings) over
// the packaged template, whose CodeUri sam deploy has made an S3 URI.
const transformScript = `
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class NoManagedPolicies:  # the template names no managed policy
    def load(self):
        return {}

template = yaml_parse(open(sys.argv[1]).read())
for resource in template["Resources"].values():
    if resource["Type"] == "AWS::Serverless::Function":
        resource["Properties"]["CodeUri"] = "s3://packaged/code.zip"
out = [transform(json.loads(json.dumps(template)), params, NoManagedPolicies()) for params in json.loads(sys.argv[2])]
print(json.dumps(out))
`

type cfnResource struct {
	Type       string
	Condition  string
	Properties map[string]any
}

type cfnTemplate struct {
	Conditions map[string]any
	Resources  map[string]cfnResource
}

// translate runs the SAM translator once per parameter set.
func translate(tb testing.TB, sets []map[string]string) []cfnTemplate {
	tb.Helper()
	if _, err := exec.LookPath("python3"); err != nil && os.Getenv("CI") == "" {
		tb.Skip("python3 with samtranslator (pip install cfn-lint) is needed to transform the template")
	}
	params, _ := json.Marshal(sets)
	cmd := exec.Command("python3", "-c", transformScript, "../../template.yaml", string(params))
	cmd.Env = append(os.Environ(), "AWS_DEFAULT_REGION=eu-west-1")
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		tb.Fatalf("the SAM translator: %v\n%s", err, stderr)
	}
	var templates []cfnTemplate
	if err := json.Unmarshal(out, &templates); err != nil {
		tb.Fatal(err)
	}
	return templates
}

// value resolves a literal or a Ref to a parameter.
func value(v any, params map[string]string) string {
	if m, ok := v.(map[string]any); ok {
		if name, ok := m["Ref"].(string); ok {
			return params[name]
		}
		return fmt.Sprint(m)
	}
	return fmt.Sprint(v)
}

// holdsIn evaluates a condition of the transformed template.
func (t cfnTemplate) holdsIn(tb testing.TB, condition any, params map[string]string) bool {
	tb.Helper()
	m, _ := condition.(map[string]any)
	for fn, arg := range m {
		items, _ := arg.([]any)
		switch fn {
		case "Condition":
			return t.holdsIn(tb, t.Conditions[arg.(string)], params)
		case "Fn::Equals":
			return value(items[0], params) == value(items[1], params)
		case "Fn::Not":
			return !t.holdsIn(tb, items[0], params)
		case "Fn::And", "Fn::Or":
			all := fn == "Fn::And"
			for _, c := range items {
				if t.holdsIn(tb, c, params) != all {
					return !all
				}
			}
			return all
		}
	}
	tb.Fatalf("cannot evaluate condition %v", condition)
	return false
}

// exists reports whether the resource is created under params.
func (t cfnTemplate) exists(tb testing.TB, r cfnResource, params map[string]string) bool {
	return r.Condition == "" || t.holdsIn(tb, map[string]any{"Condition": r.Condition}, params)
}

// parameterSets are every combination of the values that change what the
// stack creates, each parameter a condition reads taking its default and
// one other value.
func parameterSets(tb testing.TB) []map[string]string {
	tpl := load(tb)
	other := map[string]string{
		"ReaderAuthType":       "AWS_IAM",
		"NotifyUrl":            "https://example.com/kiehook",
		"KieApiKeySecretArn":   "arn:aws:secretsmanager:eu-west-1:111122223333:secret:kie-api-key-AbCdEf",
		"AlarmEmail":           "ops@example.com",
		"EventBusName":         "their-bus",
		"ObjectExpirationDays": "30",
	}
	var read []string
	tpl.At("Conditions").Walk(func(n node) {
		if n.Tag == "!Ref" && !slices.Contains(read, n.Value) {
			read = append(read, n.Value)
		}
	})
	sets := []map[string]string{{"WebhookHmacKey": "k"}}
	for _, name := range read {
		alternative, ok := other[name]
		if !ok {
			tb.Fatalf("a condition reads %s: give it a value other than its default here", name)
		}
		for _, set := range sets {
			set[name] = tpl.At("Parameters", name, "Default").Str()
			changed := map[string]string{}
			for k, v := range set {
				changed[k] = v
			}
			changed[name] = alternative
			sets = append(sets, changed)
		}
	}
	return sets
}

func TestEveryFunctionURLCanBeCalledUnderEveryParameterSet(t *testing.T) {
	sets := parameterSets(t)
	source := load(t)
	for i, tpl := range translate(t, sets) {
		params := sets[i]
		for name, url := range tpl.Resources {
			if url.Type != "AWS::Lambda::Url" || !tpl.exists(t, url, params) {
				continue
			}
			target := value(url.Properties["TargetFunctionArn"], map[string]string{})
			if ref, ok := url.Properties["TargetFunctionArn"].(map[string]any)["Ref"].(string); ok {
				target = ref
			}
			auth := value(url.Properties["AuthType"], params)
			public := map[string]bool{}
			for _, p := range tpl.Resources {
				if p.Type != "AWS::Lambda::Permission" || !tpl.exists(t, p, params) || p.Properties["Principal"] != "*" {
					continue
				}
				if fn, _ := p.Properties["FunctionName"].(map[string]any); fn["Ref"] != target {
					continue
				}
				switch {
				case p.Properties["Action"] == "lambda:InvokeFunctionUrl" && p.Properties["FunctionUrlAuthType"] == "NONE":
					public["lambda:InvokeFunctionUrl"] = true
				case p.Properties["Action"] == "lambda:InvokeFunction" && p.Properties["InvokedViaFunctionUrl"] == true:
					public["lambda:InvokeFunction"] = true
				case p.Properties["Action"] == "lambda:InvokeFunction" || p.Properties["Action"] == "lambda:InvokeFunctionUrl":
					t.Errorf("%s: a public permission on %s that is neither of the Function URL's", name, target)
				}
			}
			t.Run(fmt.Sprintf("%s with AuthType %s under %s", name, auth, describe(source, params)), func(t *testing.T) {
				switch auth {
				case "NONE":
					if !public["lambda:InvokeFunctionUrl"] || !public["lambda:InvokeFunction"] {
						t.Errorf("public permissions %v: every call would get 403 AccessDeniedException", public)
					}
				case "AWS_IAM":
					if len(public) > 0 {
						t.Errorf("public permissions %v on a URL that Lambda authenticates", public)
					}
				default:
					t.Errorf("AuthType %q", auth)
				}
			})
		}
	}
}

func describe(tpl node, params map[string]string) string {
	var parts []string
	for k, v := range params {
		if k != "WebhookHmacKey" && v != tpl.At("Parameters", k, "Default").Str() {
			parts = append(parts, k)
		}
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "the defaults"
	}
	return strings.Join(parts, ", ") + " changed"
}
