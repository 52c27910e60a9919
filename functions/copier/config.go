package main

import (
	"errors"
	"fmt"

	"github.com/kiehook/kiehook/functions/internal/download"
	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/objects"
)

// config is the copier function's environment, as the contract names it.
type config struct {
	Table        string
	Bucket       string
	Prefix       string
	Hosts        download.Hosts
	AllowPrivate bool
	MaxBytes     int64
	PathStyle    bool
	Namespace    string
	Verify       bool
	API          kieapi.Settings
	EventBus     string
	MemoryMB     int64 // AWS_LAMBDA_FUNCTION_MEMORY_SIZE, which Lambda sets
}

func loadConfig(lookup func(string) (string, bool)) (config, error) {
	env := envconf.New(lookup)
	c := config{
		Table:        env.Required("TABLE_NAME"),
		Bucket:       env.Required("BUCKET_NAME"),
		Prefix:       env.String("OBJECT_PREFIX", "tasks/"),
		Hosts:        download.ParseHosts(env.String("SOURCE_HOSTS", download.DefaultHosts)),
		AllowPrivate: env.Bool("ALLOW_PRIVATE_SOURCES", false),
		MaxBytes:     env.Int64("MAX_OBJECT_BYTES", 256<<20),
		PathStyle:    env.Bool("S3_USE_PATH_STYLE", false),
		Namespace:    env.String("METRICS_NAMESPACE", "kiehook"),
		Verify:       env.Bool("VERIFY_WITH_PLATFORM", false),
		API:          kieapi.ReadSettings(env),
		EventBus:     env.String("EVENT_BUS_NAME", ""),
		MemoryMB:     env.Int64("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 512),
	}
	err := env.Err()
	if most := int64(objects.MaxParts) * objects.PartSize; c.MaxBytes > most {
		err = errors.Join(err, fmt.Errorf("MAX_OBJECT_BYTES: at most %d (S3's %d parts of %d bytes)", most, objects.MaxParts, objects.PartSize))
	}
	if c.Verify && !c.API.Key.Set() {
		err = errors.Join(err, errors.New("VERIFY_WITH_PLATFORM: needs KIE_API_KEY or KIE_API_KEY_SECRET"))
	}
	return c, err
}

// memoryPlan shares the function's memory: the part buffers every upload
// shares (outside the Go heap), as many as keep S3 busy
// (objects.PartsInFlight) within a quarter of it, and a soft limit on the
// Go heap at half, so that the collector works harder before the sandbox,
// with the HTTP buffers, the runtime and the binary, nears its size.
// Buffers beyond those in flight buy no speed: when S3 is the slower side
// they would only fill with what the sources sent ahead.
func memoryPlan(memoryMB int64) (parts int, heapLimit int64) {
	memory := memoryMB << 20
	return min(max(int(memory/4/objects.PartSize), 2), objects.PartsInFlight), memory / 2
}
