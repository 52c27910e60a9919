// Command ops recovers copies that failed, on the deployed stack (found by
// its name) or on the local stack:
//
//	go run ./infra/ops [-stack kiehook | -local] requeue <taskId>...
//	go run ./infra/ops [-stack kiehook | -local] redrive
//
// requeue hands copy_failed tasks to the copier again, once their cause is
// fixed; redrive does it for every message in the copy dead-letter queue.
// Either way the record is reset as new, so that Task Stored is put when
// the copy succeeds. It uses the AWS CLI's credentials and region.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/events"
)

func main() {
	stack := flag.String("stack", "kiehook", "the deployed stack's name (samconfig.toml's stack_name)")
	local := flag.Bool("local", false, "act on the local stack (go run ./infra/local) instead")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go run ./infra/ops [-stack NAME | -local] requeue TASK_ID... | redrive")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx := context.Background()
	r, err := connect(ctx, *stack, *local)
	if err == nil {
		err = run(ctx, r, flag.Args(), os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ops:", err)
		os.Exit(1)
	}
}

// run carries out one command.
func run(ctx context.Context, r *Recovery, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("name a command: requeue TASK_ID... or redrive")
	}
	switch cmd, ids := args[0], args[1:]; {
	case cmd == "requeue" && len(ids) > 0:
		var errs []error
		for _, id := range ids {
			if err := r.Requeue(ctx, id); err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(out, "%s queued for the copier\n", id)
		}
		return errors.Join(errs...)
	case cmd == "redrive" && len(ids) == 0:
		moved, err := r.Redrive(ctx)
		fmt.Fprintf(out, "%d tasks moved from the dead-letter queue to the copier: %s\n", len(moved), strings.Join(moved, " "))
		return err
	default:
		return fmt.Errorf("unknown command %q: requeue TASK_ID... or redrive", strings.Join(args, " "))
	}
}

// connect finds the resources: the stack's outputs, or the local stack's.
func connect(ctx context.Context, stack string, local bool) (*Recovery, error) {
	if local {
		return localRecovery(ctx)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	out, err := cloudformation.NewFromConfig(cfg).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stack)})
	if err != nil {
		return nil, fmt.Errorf("stack %s: %w", stack, err)
	}
	outputs := map[string]string{}
	for _, o := range out.Stacks[0].Outputs {
		outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	res := Resources{Table: outputs["TasksTableName"], QueueURL: outputs["CopyQueueUrl"], DLQURL: outputs["CopyDeadLetterQueueUrl"]}
	if res.Table == "" || res.QueueURL == "" || res.DLQURL == "" {
		return nil, fmt.Errorf("stack %s lacks the outputs TasksTableName, CopyQueueUrl and CopyDeadLetterQueueUrl: is it kiehook?", stack)
	}
	return &Recovery{DynamoDB: dynamodb.NewFromConfig(cfg), SQS: sqs.NewFromConfig(cfg), Resources: res, Now: time.Now}, nil
}

// localRecovery reaches the local stack at events/env.json's endpoints.
func localRecovery(ctx context.Context) (*Recovery, error) {
	vars, err := events.LocalVars("ReconcilerFunction")
	if err != nil {
		return nil, err
	}
	res := Resources{Table: vars["TABLE_NAME"], QueueURL: vars["QUEUE_URL"], DLQURL: vars["QUEUE_URL"] + "-dlq"}
	return recoveryAt(ctx, vars["AWS_ENDPOINT_URL_DYNAMODB"], vars["AWS_ENDPOINT_URL_SQS"], res)
}

// recoveryAt is a Recovery whose clients reach emulators at the given
// endpoints.
func recoveryAt(ctx context.Context, dynamoURL, sqsURL string, res Resources) (*Recovery, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}, nil
		})))
	if err != nil {
		return nil, err
	}
	return &Recovery{
		DynamoDB: dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
			o.BaseEndpoint = aws.String(dynamoURL)
			o.DisableValidateResponseChecksum = true // minidyn's CRC32 header does not match
		}),
		SQS:       sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(sqsURL) }),
		Resources: res,
		Now:       time.Now,
	}, nil
}
