package register_test

import (
	"context"
	"testing"

	"github.com/kiehook/kiehook/functions/register"
	"github.com/kiehook/kiehook/infra/emulators"
)

func TestPending(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	ctx := context.Background()
	status, created, err := register.Pending(ctx, env.DynamoDB, env.Table, "veo_9", "veo", map[string]string{"uid": "u_42"})
	if err != nil || !created || status != "pending" {
		t.Fatalf("first: %s %v %v", status, created, err)
	}
	status, created, err = register.Pending(ctx, env.DynamoDB, env.Table, "veo_9", "veo", map[string]string{"uid": "u_42"})
	if err != nil || created || status != "pending" {
		t.Errorf("second: %s %v %v", status, created, err)
	}
	if _, _, err := register.Pending(ctx, env.DynamoDB, env.Table, "veo_10", "veo", map[string]string{"bad name": "x"}); err == nil {
		t.Error("an invalid label: want an error")
	}
	for _, bad := range [][2]string{{"a/b", "veo"}, {"ok_1", "dall-e"}} {
		if _, _, err := register.Pending(ctx, env.DynamoDB, env.Table, bad[0], bad[1], nil); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}
