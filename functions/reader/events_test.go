package main

import (
	"encoding/json"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/internal/envconf"
)

func TestTheSampleEventReadsAStoredTask(t *testing.T) {
	vars, err := sample.LocalVars("ReaderFunction")
	if err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(envconf.Map(vars))
	if err != nil {
		t.Fatalf("env.json: %v", err)
	}
	h := newHarness(t, c.Token.Value)
	b, _ := sample.Files.ReadFile("reader-get.json")
	var req events.LambdaFunctionURLRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	h.stored(t, "fluxk_7f3a9c2e")
	resp, got := h.call(t, req)
	if resp.StatusCode != 200 || got.TaskID != "fluxk_7f3a9c2e" || len(got.Links) != 2 {
		t.Errorf("got %d %s", resp.StatusCode, resp.Body)
	}
}
