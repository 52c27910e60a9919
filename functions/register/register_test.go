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
	status, created, err := register.Pending(ctx, env.DynamoDB, env.Table, "veo_9", "veo")
	if err != nil || !created || status != "pending" {
		t.Fatalf("first: %s %v %v", status, created, err)
	}
	status, created, err = register.Pending(ctx, env.DynamoDB, env.Table, "veo_9", "veo")
	if err != nil || created || status != "pending" {
		t.Errorf("second: %s %v %v", status, created, err)
	}
	for _, bad := range [][2]string{{"a/b", "veo"}, {"ok_1", "dall-e"}} {
		if _, _, err := register.Pending(ctx, env.DynamoDB, env.Table, bad[0], bad[1]); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}
