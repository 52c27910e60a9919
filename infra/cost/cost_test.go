package main

import (
	"os"
	"strings"
	"testing"
)

func TestDocsCostIsWhatTheTemplateCosts(t *testing.T) {
	var want strings.Builder
	if err := run(&want, "../../template.yaml"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../docs/cost.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Error("docs/cost.md is not what the template costs now: go run ./infra/cost > docs/cost.md")
	}
}

func TestTheEstimateReadsTheTemplate(t *testing.T) {
	raw, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := readTemplate(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{"Callback", "Copier", "Reconciler", "Reader"} {
		if tpl.memoryMB[fn] == 0 {
			t.Errorf("no memory size for %s", fn)
		}
	}
	if tpl.reconcileEvery != 60 || tpl.secrets != 3 || tpl.alarmMetrics == 0 {
		t.Errorf("read %+v", tpl)
	}
	t.Run("an idle stack costs at most 3 dollars a month, submitting deployed", func(t *testing.T) {
		total := 0.0
		for _, l := range append(idle(tpl), submitting(tpl)...) {
			total += l.usd
		}
		if total > 3 {
			t.Errorf("idle costs $%.2f a month", total)
		}
	})
	t.Run("point-in-time recovery costs by the records kept, not idle", func(t *testing.T) {
		for _, l := range idle(tpl) {
			if strings.Contains(l.what, "recovery") {
				t.Errorf("an empty table pays %s: %.2f", l.what, l.usd)
			}
		}
		if usd := pitrPerMillion(); usd <= 0 {
			t.Errorf("a million records' recovery costs %.2f", usd)
		}
	})
	t.Run("a dashboard or a KMS key would show on the idle bill", func(t *testing.T) {
		more := strings.Replace(string(raw), "\nResources:\n", "\nResources:\n  Extra:\n    Type: AWS::CloudWatch::Dashboard\n  ExtraKey:\n    Type: AWS::KMS::Key\n", 1)
		tm, err := readTemplate([]byte(more))
		if err != nil {
			t.Fatal(err)
		}
		if len(idle(tm)) != len(idle(tpl))+2 {
			t.Error("the idle estimate misses a dashboard or a key")
		}
	})
	t.Run("a larger copier costs more", func(t *testing.T) {
		bigger := strings.Replace(string(raw), "MemorySize: 512", "MemorySize: 1024", 1)
		tb, err := readTemplate([]byte(bigger))
		if err != nil {
			t.Fatal(err)
		}
		if perMillion(tb)[1].usd <= perMillion(tpl)[1].usd {
			t.Error("the copier's cost does not follow its memory size")
		}
	})
}
