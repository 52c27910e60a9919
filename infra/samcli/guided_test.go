package samcli_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kiehook/kiehook/infra/samcli"
)

func texts(prompts []samcli.Prompt) []string {
	var out []string
	for _, p := range prompts {
		out = append(out, p.Text)
	}
	return out
}

func TestTheGuidedDeployIsShort(t *testing.T) {
	prompts, err := kiehookTemplate(t).GuidedPrompts()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("it asks at most 20 questions, the SAM CLI's own included", func(t *testing.T) {
		if len(prompts) > 20 {
			t.Errorf("%d questions: %q", len(prompts), texts(prompts))
		}
	})
	t.Run("only the webhook key must be typed", func(t *testing.T) {
		var typed []string
		for _, p := range prompts {
			if p.MustType {
				typed = append(typed, p.Text)
			}
		}
		if !slices.Equal(typed, []string{"Parameter WebhookHmacKey"}) {
			t.Errorf("must be typed: %q", typed)
		}
	})
}

// guidedTable is the first column of the README's table of the guided
// deploy's questions, the one headed "| question | answer |".
func guidedTable(tb testing.TB) []string {
	readme := string(readFile(tb, "../../README.md"))
	_, table, ok := strings.Cut(readme, "| question | answer |")
	if !ok {
		tb.Fatal("the README has no table of the guided deploy's questions")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	var rows []string
	for _, m := range regexp.MustCompile(`(?m)^\s*\| ([^|]+) \|`).FindAllStringSubmatch(table, -1) {
		if q := strings.Trim(m[1], "` "); !strings.HasPrefix(q, "---") {
			rows = append(rows, q)
		}
	}
	return rows
}

func TestTheREADMEAnswersEveryGuidedQuestionInOrder(t *testing.T) {
	prompts, err := kiehookTemplate(t).GuidedPrompts()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := guidedTable(t), texts(prompts); !slices.Equal(got, want) {
		t.Errorf("the README's table asks\n%q\nthe SAM CLI asks\n%q", got, want)
	}
}

func TestTheGuidedPromptsFollowTheSAMCLI(t *testing.T) {
	const template = `
Parameters:
  Key: {Type: String, NoEcho: true}
  Auth: {Type: String, Default: NONE}
  Other: {Type: String, Default: AWS_IAM}
Resources:
  Open:
    Type: AWS::Serverless::Function
    Properties: {FunctionUrlConfig: {AuthType: NONE}}
  ByParameter:
    Type: AWS::Serverless::Function
    Properties: {FunctionUrlConfig: {AuthType: !Ref Auth}}
  Signed:
    Type: AWS::Serverless::Function
    Properties: {FunctionUrlConfig: {AuthType: !Ref Other}}
  NoURL:
    Type: AWS::Serverless::Function
`
	tpl, err := samcli.Parse([]byte(template))
	if err != nil {
		t.Fatal(err)
	}
	prompts, err := tpl.GuidedPrompts()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Stack Name", "AWS Region", "Parameter Key", "Parameter Auth", "Parameter Other",
		"Confirm changes before deploy", "Allow SAM CLI IAM role creation", "Disable rollback",
		"Open Function Url has no authentication. Is this okay?", "ByParameter Function Url has no authentication. Is this okay?",
		"Save arguments to configuration file", "SAM configuration file", "SAM configuration environment"}
	if got := texts(prompts); !slices.Equal(got, want) {
		t.Errorf("prompts\n%q\nwant\n%q", got, want)
	}
	if !prompts[2].MustType || prompts[3].MustType {
		t.Error("a NoEcho parameter, and only it, must be typed")
	}
}
