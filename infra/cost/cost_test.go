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
	if tpl.reconcileEvery != 60 || tpl.secrets != 3 || tpl.alarmMetrics == 0 || tpl.dashboards != 1 {
		t.Errorf("read %+v", tpl)
	}
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
