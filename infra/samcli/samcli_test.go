package samcli_test

import (
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/kiehook/kiehook/infra/samcli"
)

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func kiehookTemplate(tb testing.TB) *samcli.Template {
	tb.Helper()
	tpl, err := samcli.Parse(readFile(tb, "../../template.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	return tpl
}

func TestEveryVariableOfEnvJSONReachesItsFunction(t *testing.T) {
	tpl := kiehookTemplate(t)
	raw := readFile(t, "../../events/env.json")
	var file map[string]map[string]string
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	for function, vars := range file {
		t.Run(function+" sees every variable env.json sets for it", func(t *testing.T) {
			env, dropped, err := tpl.Environment(function, raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(dropped) != 0 {
				t.Errorf("the SAM CLI would drop %v: the template does not declare them for %s", dropped, function)
			}
			for name, want := range vars {
				if env[name] != want && !slices.Contains(dropped, name) {
					t.Errorf("%s = %q, want %q", name, env[name], want)
				}
			}
		})
	}
}

func TestTheLocalOnlyVariablesAreHarmlessWhenDeployed(t *testing.T) {
	tpl := kiehookTemplate(t)
	want := map[string]map[string]string{
		"CallbackFunction":   {"WEBHOOK_HMAC_KEY": "", "CALLBACK_TOKEN": "", "AWS_ENDPOINT_URL_DYNAMODB": "", "AWS_ENDPOINT_URL_SQS": "", "AWS_ENDPOINT_URL_EVENTBRIDGE": ""},
		"CopierFunction":     {"ALLOW_PRIVATE_SOURCES": "false", "S3_USE_PATH_STYLE": "false", "AWS_ENDPOINT_URL_S3": "", "AWS_ENDPOINT_URL_DYNAMODB": ""},
		"ReconcilerFunction": {"AWS_ENDPOINT_URL_SQS": "", "AWS_ENDPOINT_URL_DYNAMODB": ""},
	}
	for function, vars := range want {
		env, _, err := tpl.Environment(function, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		for name, value := range vars {
			if got, ok := env[name]; !ok || got != value {
				t.Errorf("%s: %s = %q (declared %v), want %q: empty endpoints mean the SDK's default, empty secrets unset", function, name, got, ok, value)
			}
		}
	}
}

func TestTheSAMCLIRules(t *testing.T) {
	const template = `
Parameters:
  Stage: {Type: String, Default: dev}
  Token: {Type: String, Default: ""}
Conditions:
  HasToken: !Not [!Equals [!Ref Token, ""]]
  IsDev: !Equals [!Ref Stage, dev]
Globals:
  Function:
    Environment:
      Variables:
        TABLE: !Ref Table
        SHARED: global
Resources:
  Table: {Type: AWS::DynamoDB::Table}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          SHARED: own
          STAGE: !Ref Stage
          TOKEN: !If [HasToken, !Ref Token, !Ref AWS::NoValue]
          MODE: !If [IsDev, debug, quiet]
          ARN: !GetAtt Table.Arn
          NAME: !Sub "${Stage}-${AWS::Region}"
`
	tpl, err := samcli.Parse([]byte(template))
	if err != nil {
		t.Fatal(err)
	}
	env, dropped, err := tpl.Environment("Fn", []byte(`{"Fn":{"STAGE":"local","TOKEN":"t","EXTRA":"x"},"Parameters":{"MODE":"all"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"TABLE": "Table", "SHARED": "own", "STAGE": "local", "MODE": "all", "ARN": "", "NAME": "dev-us-east-1"}
	for name, value := range want {
		if env[name] != value {
			t.Errorf("%s = %q, want %q", name, env[name], value)
		}
	}
	if _, ok := env["TOKEN"]; ok {
		t.Error("a variable whose value is AWS::NoValue is not declared, so env.json cannot set it")
	}
	if !slices.Equal(dropped, []string{"EXTRA", "TOKEN"}) {
		t.Errorf("dropped %v, want the undeclared EXTRA and TOKEN", dropped)
	}
	if _, _, err := tpl.Environment("Nope", []byte(`{}`)); err == nil {
		t.Error("an unknown function must be an error")
	}
}

// Under sam local invoke, !Ref to a secret resource is its logical id: a
// plain key from env.json beside it would be "both set", and the function
// would refuse to start.
func TestNoLocalCredentialIsAlsoASecret(t *testing.T) {
	tpl := kiehookTemplate(t)
	raw := readFile(t, "../../events/env.json")
	for _, function := range []string{"CallbackFunction", "CopierFunction", "ReconcilerFunction", "ReaderFunction", "SubmitFunction", "SubmitterFunction"} {
		env, _, err := tpl.Environment(function, raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"WEBHOOK_HMAC_KEY", "CALLBACK_TOKEN", "READ_TOKEN", "KIE_API_KEY", "SUBMIT_TOKEN"} {
			if env[name] != "" && env[name+"_SECRET"] != "" {
				t.Errorf("%s: %s and %s=%q are both set", function, name, name+"_SECRET", env[name+"_SECRET"])
			}
		}
	}
}
