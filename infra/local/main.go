// Command local runs kiehook on this machine, on real wire protocols:
//
//	go run ./infra/local          # the stack, until Ctrl-C
//	go run ./infra/local -demo    # and play the platform once through it
//
// DynamoDB, SQS and S3 run in-process (127.0.0.1:4569, :4576, :4572); both
// functions are built and run under the Runtime Interface Emulator; the
// callback URL is an HTTP front on 127.0.0.1:3000.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/stack"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3000", "address of the HTTP front (the Function URL)")
	dir := flag.String("dir", "", "folder for the built binaries and the functions' logs (default .kiehook/ at the module root)")
	demo := flag.Bool("demo", false, "play the platform: send every API's callbacks, signed, with a duplicate and a failure, then print the tasks")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := stack.Options{
		Addr: *addr,
		Dir:  *dir,
		// The names and ports of events/env.json, so that `sam local invoke`
		// can reach this stack too.
		Emulators: emulators.Options{
			Table: "kiehook-tasks", Queue: "kiehook-copy", DLQ: "kiehook-copy-dlq", Bucket: "kiehook-objects",
			DynamoDBAddr: "127.0.0.1:4569", SQSAddr: "127.0.0.1:4576", S3Addr: "127.0.0.1:4572",
		},
	}
	if err := run(ctx, os.Stdout, opts, *demo); err != nil {
		fmt.Fprintln(os.Stderr, "kiehook local:", err)
		os.Exit(1)
	}
}

// run starts the stack, plays the demo if asked, and waits for ctx to end.
func run(ctx context.Context, out io.Writer, opts stack.Options, demo bool) error {
	fmt.Fprintln(out, "building the functions and starting the emulators…")
	s, err := stack.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(out, `
kiehook is running locally.

  callback URL   %s
  webhook key    %s   (sign X-Webhook-Signature with it)
  tasks          %s/_local/tasks
  objects        %s/_local/objects/<key>
  DynamoDB       %s   table %s
  SQS            %s   queue %s, dead letters %s
  S3             %s   bucket %s (path-style)

Press Ctrl-C to stop.
`, s.CallbackURL, s.Key, s.URL, s.URL, s.Env.DynamoDBURL, s.Env.Table, s.Env.SQSURL, s.Env.QueueName, s.Env.DLQName, s.Env.S3URL, s.Env.Bucket)
	if demo {
		if err := runDemo(ctx, s, out); err != nil {
			return err
		}
	}
	<-ctx.Done()
	fmt.Fprintln(out, "stopping…")
	return nil
}
