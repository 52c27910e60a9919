package main

import (
	"os"
	"testing"

	"github.com/kiehook/kiehook/infra/stack"
)

// binaries are the functions, built once before any test's clock starts.
var binaries *stack.Binaries

func TestMain(m *testing.M) { os.Exit(stack.RunTests(m, &binaries)) }
