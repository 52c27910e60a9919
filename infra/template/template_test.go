package template

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// node is a YAML node with small helpers for walking a template.
type node struct{ *yaml.Node }

func load(tb testing.TB) node {
	tb.Helper()
	b, err := os.ReadFile("../../template.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		tb.Fatalf("template.yaml: %v", err)
	}
	return node{doc.Content[0]}
}

// at walks mapping keys; it returns a zero node when a key is missing.
func (n node) at(path ...string) node {
	for _, key := range path {
		if n.Node == nil || n.Kind != yaml.MappingNode {
			return node{}
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		n = node{next}
	}
	return n
}

func (n node) ok() bool { return n.Node != nil }

func (n node) str() string {
	if n.Node == nil {
		return ""
	}
	return n.Value
}

func (n node) keys() []string {
	var keys []string
	if n.Node != nil && n.Kind == yaml.MappingNode {
		for i := 0; i < len(n.Content); i += 2 {
			keys = append(keys, n.Content[i].Value)
		}
	}
	return keys
}

func (n node) items() []node {
	var items []node
	if n.Node != nil && n.Kind == yaml.SequenceNode {
		for _, c := range n.Content {
			items = append(items, node{c})
		}
	}
	return items
}

func (n node) strs() []string {
	var s []string
	for _, i := range n.items() {
		s = append(s, i.Value)
	}
	return s
}

// walk visits n and every node below it.
func (n node) walk(visit func(node)) {
	if n.Node == nil {
		return
	}
	visit(n)
	for _, c := range n.Content {
		node{c}.walk(visit)
	}
}

func expect(tb testing.TB, n node, want string, path ...string) {
	tb.Helper()
	if got := n.at(path...).str(); got != want {
		tb.Errorf("%s = %q, want %q", strings.Join(path, "."), got, want)
	}
}

// refersToParameter checks that n is !Ref to one of the template's parameters.
func refersToParameter(tb testing.TB, tpl, n node, what string) {
	tb.Helper()
	if n.Tag != "!Ref" || !tpl.at("Parameters", n.Value).ok() {
		tb.Errorf("%s must be !Ref to a parameter, is %s %q", what, n.Tag, n.str())
	}
}

func TestTemplateIsAServerlessApplication(t *testing.T) {
	tpl := load(t)
	expect(t, tpl, "AWS::Serverless-2016-10-31", "Transform")
	fn := tpl.at("Globals", "Function")
	expect(t, fn, "provided.al2023", "Runtime")
	expect(t, fn, "bootstrap", "Handler")
	expect(t, fn, "JSON", "LoggingConfig", "LogFormat")
	if got := fn.at("Architectures").strs(); !slices.Equal(got, []string{"arm64"}) {
		t.Errorf("Architectures = %v, want [arm64]", got)
	}
}

func TestEveryFunctionBuildsAStaticNorpcBootstrap(t *testing.T) {
	tpl := load(t)
	makefile, err := os.ReadFile("../../functions/Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"CallbackFunction": "callback", "CopierFunction": "copier", "ReconcilerFunction": "reconciler"} {
		t.Run(name+" is built by the Makefile from ./functions/"+dir, func(t *testing.T) {
			fn := tpl.at("Resources", name)
			expect(t, fn, "AWS::Serverless::Function", "Type")
			expect(t, fn, "makefile", "Metadata", "BuildMethod")
			expect(t, fn, "true", "Metadata", "BuildInSource")
			expect(t, fn, "functions", "Properties", "CodeUri")
			target := regexp.MustCompile(`(?m)^build-` + name + `:\n\t(.+)$`).FindStringSubmatch(string(makefile))
			if target == nil || !strings.Contains(target[1], "./functions/"+dir) || !strings.Contains(target[1], "$(ARTIFACTS_DIR)/bootstrap") {
				t.Fatalf("no build-%s target building ./functions/%s into $(ARTIFACTS_DIR)/bootstrap", name, dir)
			}
			for _, flag := range []string{"CGO_ENABLED=0", "-tags lambda.norpc", "GOOS=linux"} {
				if !strings.Contains(string(makefile), flag) {
					t.Errorf("the Makefile's build lacks %s", flag)
				}
			}
			if _, err := os.Stat("../../functions/" + dir + "/main.go"); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCallbackFunction(t *testing.T) {
	tpl := load(t)
	p := tpl.at("Resources", "CallbackFunction", "Properties")
	expect(t, p, "NONE", "FunctionUrlConfig", "AuthType")
	t.Run("reserved concurrency is off unless asked for, so that small accounts can deploy", func(t *testing.T) {
		rc := p.at("ReservedConcurrentExecutions")
		if rc.Tag != "!If" || rc.items()[0].Value != "ReservesCallbackConcurrency" || rc.items()[2].Value != "AWS::NoValue" {
			t.Errorf("ReservedConcurrentExecutions must be !If [ReservesCallbackConcurrency, …, AWS::NoValue]")
		}
		refersToParameter(t, tpl, rc.items()[1], "ReservedConcurrentExecutions")
		expect(t, tpl, "0", "Parameters", "CallbackReservedConcurrency", "Default")
		for _, fn := range []string{"CopierFunction", "ReconcilerFunction"} {
			if tpl.at("Resources", fn, "Properties", "ReservedConcurrentExecutions").ok() {
				t.Errorf("%s reserves concurrency", fn)
			}
		}
	})
	if timeout, _ := strconv.Atoi(p.at("Timeout").str()); timeout <= 10 || timeout >= 15 {
		t.Errorf("Timeout %d: must exceed the 10 s request budget and stay under the platform's 15 s", timeout)
	}
	if got := allowedActions(p); !slices.Equal(got, []string{"dynamodb:PutItem", "dynamodb:UpdateItem", "events:PutEvents", "secretsmanager:GetSecretValue", "secretsmanager:GetSecretValue", "sqs:SendMessage"}) {
		t.Errorf("actions %v", got)
	}
	t.Run("the token is read from its own secret, never a plain variable", func(t *testing.T) {
		if cond := conditionalOn(p, "ReadCallbackToken"); cond != "HasToken" {
			t.Errorf("the token's statement is under %q", cond)
		}
		if res := statement(p, "ReadCallbackToken").at("Resource"); res.Tag != "!Ref" || res.Value != "CallbackTokenSecret" {
			t.Errorf("the token's statement names %s %q", res.Tag, res.Value)
		}
		env := p.at("Environment", "Variables")
		if v := env.at("CALLBACK_TOKEN_SECRET"); v.Tag != "!If" || v.items()[1].Value != "CallbackTokenSecret" {
			t.Error("CALLBACK_TOKEN_SECRET must name the token's secret")
		}
		for _, section := range []string{"Globals", "Resources", "Outputs"} {
			tpl.at(section).walk(func(n node) {
				if n.Tag == "!Ref" && n.Value == "CallbackToken" && n != tpl.at("Resources", "CallbackTokenSecret", "Properties", "SecretString") {
					t.Error("the CallbackToken parameter may only go into its secret")
				}
			})
		}
	})
	secret := statement(p, "ReadWebhookKey")
	if !secret.ok() {
		t.Fatal("no ReadWebhookKey statement")
	}
	if cond := conditionalOn(p, "ReadWebhookKey"); cond != "UsesKeySecret" {
		t.Errorf("the secret statement must exist only when a key secret is used, is under %q", cond)
	}
	if secret.at("Resource").Tag != "!If" {
		t.Error("the secret statement must name the secret, not every secret")
	}
}

func TestCopierFunction(t *testing.T) {
	tpl := load(t)
	p := tpl.at("Resources", "CopierFunction", "Properties")
	ev := p.at("Events", "CopyQueueEvent")
	expect(t, ev, "SQS", "Type")
	expect(t, ev, "CopyQueue.Arn", "Properties", "Queue")
	refersToParameter(t, tpl, ev.at("Properties", "BatchSize"), "BatchSize")
	if most := tpl.at("Parameters", ev.at("Properties", "BatchSize").Value, "MaxValue").str(); most != "4" {
		t.Errorf("BatchSize MaxValue %s: every copy of a batch starts at once, and memory allows 4", most)
	}
	refersToParameter(t, tpl, ev.at("Properties", "ScalingConfig", "MaximumConcurrency"), "ScalingConfig.MaximumConcurrency")
	if !ev.at("Properties", "MaximumBatchingWindowInSeconds").ok() {
		t.Error("no MaximumBatchingWindowInSeconds")
	}
	if got := ev.at("Properties", "FunctionResponseTypes").strs(); !slices.Equal(got, []string{"ReportBatchItemFailures"}) {
		t.Errorf("FunctionResponseTypes = %v", got)
	}
	if got := allowedActions(p); !slices.Equal(got, []string{"dynamodb:GetItem", "dynamodb:UpdateItem", "events:PutEvents", "s3:AbortMultipartUpload", "s3:PutObject", "s3:PutObjectTagging", "secretsmanager:GetSecretValue"}) {
		t.Errorf("actions %v", got)
	}
	if res := statement(p, "WriteCopies").at("Resource"); res.Tag != "!Sub" || res.Value != "${ObjectsBucket.Arn}/${ObjectPrefix}*" {
		t.Errorf("S3 access must be limited to the prefix, is %s %q", res.Tag, res.Value)
	}
	t.Run("it streams: no ephemeral storage beyond Lambda's default, and files up to S3's 10,000 parts", func(t *testing.T) {
		if p.at("EphemeralStorage").ok() || tpl.at("Parameters", "CopierEphemeralStorage").ok() {
			t.Error("the copier spools nothing: it needs no ephemeral storage setting")
		}
		// S3's 10,000 parts of the copier's 5 MiB (objects.MaxParts × PartSize,
		// which the copier's configuration enforces).
		if most := tpl.at("Parameters", "MaxObjectBytes", "MaxValue").str(); most != "52428800000" {
			t.Errorf("MaxObjectBytes MaxValue %s, want S3's parts × the copier's part size", most)
		}
	})
}

// statements are the inline policy statements of a function, unwrapping !If.
func statements(fn node) map[string]node {
	all := map[string]node{}
	for _, policy := range fn.at("Policies").items() {
		for _, s := range policy.at("Statement").items() {
			if s.Tag == "!If" {
				s = s.items()[1]
			}
			all[s.at("Sid").str()] = s
		}
	}
	return all
}

func statement(fn node, sid string) node { return statements(fn)[sid] }

func conditionalOn(fn node, sid string) string {
	for _, policy := range fn.at("Policies").items() {
		for _, s := range policy.at("Statement").items() {
			if s.Tag == "!If" && s.items()[1].at("Sid").str() == sid {
				return s.items()[0].Value
			}
		}
	}
	return ""
}

func allowedActions(fn node) []string {
	var actions []string
	for _, s := range statements(fn) {
		actions = append(actions, s.at("Action").strs()...)
	}
	slices.Sort(actions)
	return actions
}

func TestNoAllowStatementHasAWildcard(t *testing.T) {
	tpl := load(t)
	resources := tpl.at("Resources")
	for _, name := range resources.keys() {
		if resources.at(name, "Type").str() == "AWS::KMS::Key" {
			continue // in a key policy, "*" is the key itself
		}
		checkNoWildcard(t, resources.at(name))
	}
}

func checkNoWildcard(t *testing.T, resource node) {
	t.Helper()
	resource.walk(func(n node) {
		if n.Kind != yaml.MappingNode || n.at("Effect").str() != "Allow" {
			return
		}
		actions := n.at("Action").strs()
		if a := n.at("Action"); a.Kind == yaml.ScalarNode {
			actions = []string{a.Value}
		}
		for _, a := range actions {
			if strings.Contains(a, "*") {
				t.Errorf("statement %s allows wildcard action %s", n.at("Sid").str(), a)
			}
		}
		if n.at("Resource").str() == "*" {
			t.Errorf("statement %s allows every resource", n.at("Sid").str())
		}
	})
}

func TestReconcilerFunction(t *testing.T) {
	tpl := load(t)
	p := tpl.at("Resources", "ReconcilerFunction", "Properties")
	ev := p.at("Events", "EveryMinute")
	expect(t, ev, "Schedule", "Type")
	expect(t, ev, "rate(1 minute)", "Properties", "Schedule")
	if got := allowedActions(p); !slices.Equal(got, []string{"dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem", "events:PutEvents", "secretsmanager:GetSecretValue", "sqs:SendMessage"}) {
		t.Errorf("actions %v", got)
	}
	if res := statement(p, "ListOpenTasks").at("Resource"); res.Value != "${TasksTable.Arn}/index/open-tasks" {
		t.Errorf("Query must be limited to the open-tasks index, is %q", res.Value)
	}
	if cond := conditionalOn(p, "ReadApiKey"); cond != "UsesApiKeySecret" {
		t.Errorf("the API key statement must exist only with a key, is under %q", cond)
	}
	gsi := tpl.at("Resources", "TasksTable", "Properties", "GlobalSecondaryIndexes").items()
	if len(gsi) != 1 || gsi[0].at("IndexName").str() != "open-tasks" {
		t.Fatal("the table needs the open-tasks index")
	}
	keys := gsi[0].at("KeySchema").items()
	if len(keys) != 2 || keys[0].at("AttributeName").str() != "openStatus" || keys[1].at("AttributeName").str() != "updatedAt" {
		t.Error("open-tasks is keyed by openStatus and updatedAt")
	}
	expect(t, tpl, "true", "Parameters", "KieApiKey", "NoEcho")
}

func TestQueues(t *testing.T) {
	tpl := load(t)
	q := tpl.at("Resources", "CopyQueue", "Properties")
	t.Run("the reconciler knows when a copy's deliveries are used up", func(t *testing.T) {
		env := tpl.at("Resources", "ReconcilerFunction", "Properties", "Environment", "Variables")
		if env.at("COPY_VISIBILITY_TIMEOUT").str() != q.at("VisibilityTimeout").str()+"s" {
			t.Errorf("COPY_VISIBILITY_TIMEOUT %q, the queue's VisibilityTimeout %q", env.at("COPY_VISIBILITY_TIMEOUT").str(), q.at("VisibilityTimeout").str())
		}
		if env.at("COPY_MAX_RECEIVE_COUNT").Value != q.at("RedrivePolicy", "maxReceiveCount").Value {
			t.Error("COPY_MAX_RECEIVE_COUNT must be the queue's maxReceiveCount")
		}
	})
	dlq := tpl.at("Resources", "CopyDeadLetterQueue", "Properties")
	expect(t, q, "CopyDeadLetterQueue.Arn", "RedrivePolicy", "deadLetterTargetArn")
	refersToParameter(t, tpl, q.at("RedrivePolicy", "maxReceiveCount"), "maxReceiveCount")
	visibility, _ := strconv.Atoi(q.at("VisibilityTimeout").str())
	timeout, _ := strconv.Atoi(tpl.at("Resources", "CopierFunction", "Properties", "Timeout").str())
	if timeout == 0 || visibility < 6*timeout {
		t.Errorf("VisibilityTimeout %d must be at least 6 × the copier's timeout %d", visibility, timeout)
	}
	for _, props := range []node{q, dlq} {
		expect(t, props, "true", "SqsManagedSseEnabled")
	}
	expect(t, dlq, "1209600", "MessageRetentionPeriod")
}

func TestTable(t *testing.T) {
	tpl := load(t)
	p := tpl.at("Resources", "TasksTable", "Properties")
	expect(t, p, "PAY_PER_REQUEST", "BillingMode")
	keys := p.at("KeySchema").items()
	if len(keys) != 1 || keys[0].at("AttributeName").str() != "taskId" || keys[0].at("KeyType").str() != "HASH" {
		t.Error("the key must be taskId alone")
	}
	attrs := p.at("AttributeDefinitions").items()
	if len(attrs) == 0 || attrs[0].at("AttributeName").str() != "taskId" || attrs[0].at("AttributeType").str() != "S" {
		t.Error("taskId must be a string")
	}
	expect(t, p, "expiresAt", "TimeToLiveSpecification", "AttributeName")
	expect(t, p, "true", "TimeToLiveSpecification", "Enabled")
	expect(t, p, "true", "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled")
	refersToParameter(t, tpl, p.at("DeletionProtectionEnabled"), "DeletionProtectionEnabled")
}

func TestBucket(t *testing.T) {
	tpl := load(t)
	p := tpl.at("Resources", "ObjectsBucket", "Properties")
	for _, block := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		expect(t, p, "true", "PublicAccessBlockConfiguration", block)
	}
	if !p.at("BucketEncryption", "ServerSideEncryptionConfiguration").ok() {
		t.Error("no encryption")
	}
	if rules := p.at("OwnershipControls", "Rules").items(); len(rules) != 1 || rules[0].at("ObjectOwnership").str() != "BucketOwnerEnforced" {
		t.Error("ownership must be BucketOwnerEnforced")
	}
	var expiry node
	for _, r := range p.at("LifecycleConfiguration", "Rules").items() {
		if r.Tag == "!If" && r.items()[0].Value == "HasObjectExpiration" {
			expiry = r.items()[1]
		}
	}
	refersToParameter(t, tpl, expiry.at("ExpirationInDays"), "the lifecycle expiry")
	policy := tpl.at("Resources", "ObjectsBucketPolicy", "Properties", "PolicyDocument", "Statement").items()
	if len(policy) == 0 || policy[0].at("Effect").str() != "Deny" || policy[0].at("Condition", "Bool", "aws:SecureTransport").str() != "false" {
		t.Error("the bucket policy must deny requests without TLS")
	}
}

func TestAlarms(t *testing.T) {
	tpl := load(t)
	for _, name := range []string{"DeadLetterQueueAlarm", "CopierErrorsAlarm", "Callback5xxAlarm", "AuthFailuresAlarm", "StaleQueuedAlarm"} {
		a := tpl.at("Resources", name)
		expect(t, a, "AWS::CloudWatch::Alarm", "Type")
		if actions := a.at("Properties", "AlarmActions"); actions.Tag != "!If" || actions.items()[0].Value != "HasAlarmEmail" {
			t.Errorf("%s must notify the alarm topic when an email is given", name)
		}
	}
	if subs := tpl.at("Resources", "AlarmTopic", "Properties", "Subscription").items(); len(subs) != 1 || subs[0].at("Protocol").str() != "email" || subs[0].at("Endpoint").str() != "AlarmEmail" {
		t.Error("the topic must mail AlarmEmail")
	}
	t.Run("CloudWatch may use the topic's key, so the alarms arrive", func(t *testing.T) {
		key := tpl.at("Resources", "AlarmTopic", "Properties", "KmsMasterKeyId")
		if key.Tag != "!Ref" || tpl.at("Resources", key.Value, "Type").str() != "AWS::KMS::Key" {
			t.Fatalf("the topic's key is %s %q: an AWS managed key (alias/aws/sns) cannot let CloudWatch publish", key.Tag, key.Value)
		}
		granted := false
		for _, s := range tpl.at("Resources", key.Value, "Properties", "KeyPolicy", "Statement").items() {
			actions := s.at("Action").strs()
			if s.at("Effect").str() == "Allow" && s.at("Principal", "Service").str() == "cloudwatch.amazonaws.com" &&
				slices.Contains(actions, "kms:Decrypt") && slices.Contains(actions, "kms:GenerateDataKey*") {
				granted = true
			}
		}
		if !granted {
			t.Error("the key policy must let cloudwatch.amazonaws.com Decrypt and GenerateDataKey*")
		}
	})
}

// contractVariables are the configuration names of the contract.
var contractVariables = []string{
	"TABLE_NAME", "QUEUE_URL", "BUCKET_NAME", "OBJECT_PREFIX", "WEBHOOK_HMAC_KEY", "WEBHOOK_HMAC_KEY_SECRET",
	"CALLBACK_TOKEN", "ALLOW_UNAUTHENTICATED", "SIGNATURE_TOLERANCE", "RECORD_TTL", "SOURCE_HOSTS",
	"ALLOW_PRIVATE_SOURCES", "MAX_OBJECT_BYTES", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB",
	"AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_S3", "S3_USE_PATH_STYLE",
	// kiehook's own additions, documented in the README:
	"METRICS_NAMESPACE", "KIE_API_KEY", "KIE_API_KEY_SECRET", "KIE_API_BASE_URL", "VERIFY_WITH_PLATFORM",
	"PENDING_POLL_AFTER", "STUCK_RECEIVED_AFTER", "QUEUED_ALERT_AFTER", "PLATFORM_RETENTION", "RECONCILE_LIMIT",
	"SECRET_REFRESH", "EVENT_BUS_NAME", "AWS_ENDPOINT_URL_EVENTBRIDGE", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "NOTIFY_SWEEP_AFTER",
	"COPY_MAX_RECEIVE_COUNT", "COPY_VISIBILITY_TIMEOUT", "CALLBACK_TOKEN_SECRET",
}

func TestEnvironmentFollowsTheContract(t *testing.T) {
	tpl := load(t)
	set := map[string]bool{}
	for _, vars := range []node{
		tpl.at("Globals", "Function", "Environment", "Variables"),
		tpl.at("Resources", "CallbackFunction", "Properties", "Environment", "Variables"),
		tpl.at("Resources", "CopierFunction", "Properties", "Environment", "Variables"),
		tpl.at("Resources", "ReconcilerFunction", "Properties", "Environment", "Variables"),
	} {
		for _, name := range vars.keys() {
			if !slices.Contains(contractVariables, name) {
				t.Errorf("%s is not a contract variable", name)
			}
			set[name] = true
		}
	}
	// The deployed way sets every production setting; the plain key, the
	// private-source switch and the emulator overrides stay local.
	for _, name := range []string{"TABLE_NAME", "QUEUE_URL", "BUCKET_NAME", "OBJECT_PREFIX", "WEBHOOK_HMAC_KEY_SECRET", "CALLBACK_TOKEN_SECRET", "ALLOW_UNAUTHENTICATED", "SIGNATURE_TOLERANCE", "RECORD_TTL", "SOURCE_HOSTS", "MAX_OBJECT_BYTES", "METRICS_NAMESPACE", "EVENT_BUS_NAME", "NOTIFY_SWEEP_AFTER"} {
		if !set[name] {
			t.Errorf("the template does not set %s", name)
		}
	}
	for _, secret := range []string{"CallbackToken", "WebhookHmacKey"} {
		expect(t, tpl, "true", "Parameters", secret, "NoEcho")
	}
}

func TestTaskEventBus(t *testing.T) {
	tpl := load(t)
	busArn := tpl.at("Outputs", "EventBusArn", "Value")
	t.Run("the stack creates a bus unless one is named", func(t *testing.T) {
		bus := tpl.at("Resources", "TaskEventBus")
		expect(t, bus, "AWS::Events::EventBus", "Type")
		expect(t, bus, "CreatesEventBus", "Condition")
		if c := tpl.at("Conditions", "CreatesEventBus"); c.Tag != "!Equals" || c.items()[0].Value != "EventBusName" || c.items()[1].Value != "" {
			t.Error("CreatesEventBus must be EventBusName = \"\"")
		}
		if name := tpl.at("Globals", "Function", "Environment", "Variables", "EVENT_BUS_NAME"); name.Tag != "!If" || name.items()[0].Value != "CreatesEventBus" {
			t.Error("every function's EVENT_BUS_NAME must be the created or the named bus")
		}
		if busArn.Tag != "!If" || busArn.items()[1].Value != "TaskEventBus.Arn" {
			t.Errorf("EventBusArn output %s %v", busArn.Tag, busArn.items())
		}
	})
	t.Run("an archive keeps kiehook's events for a configurable time", func(t *testing.T) {
		a := tpl.at("Resources", "TaskEventArchive")
		expect(t, a, "AWS::Events::Archive", "Type")
		refersToParameter(t, tpl, a.at("Properties", "RetentionDays"), "RetentionDays")
		if got := a.at("Properties", "EventPattern", "source").strs(); !slices.Equal(got, []string{"kiehook"}) {
			t.Errorf("archive pattern source %v", got)
		}
		if src := a.at("Properties", "SourceArn"); src.Tag != "!If" || src.items()[1].Value != busArn.items()[1].Value {
			t.Error("the archive must be of the task event bus")
		}
	})
	t.Run("each function may put events on that bus only", func(t *testing.T) {
		for _, fn := range []string{"CallbackFunction", "CopierFunction", "ReconcilerFunction"} {
			s := statement(tpl.at("Resources", fn, "Properties"), "PutTaskEvents")
			if got := s.at("Action").strs(); !slices.Equal(got, []string{"events:PutEvents"}) {
				t.Errorf("%s: actions %v", fn, got)
			}
			res := s.at("Resource")
			if res.Tag != "!If" || res.items()[1].Value != busArn.items()[1].Value || res.items()[2].Value != busArn.items()[2].Value {
				t.Errorf("%s may put events elsewhere than the task event bus", fn)
			}
		}
	})
	t.Run("the reconciler's sweep knows the bucket of the Task Stored events it puts", func(t *testing.T) {
		expect(t, tpl, "ObjectsBucket", "Resources", "ReconcilerFunction", "Properties", "Environment", "Variables", "BUCKET_NAME")
	})
}

func TestOutputs(t *testing.T) {
	tpl := load(t)
	for _, name := range []string{"CallbackUrl", "TasksTableName", "ObjectsBucketName", "CopyQueueUrl", "CopyDeadLetterQueueUrl", "EventBusName", "EventBusArn"} {
		if !tpl.at("Outputs", name, "Value").ok() {
			t.Errorf("no output %s", name)
		}
	}
	if d := tpl.at("Outputs", "CallbackUrl", "Description").str(); !strings.Contains(d, "?token=") {
		t.Errorf("the callback URL's description must explain the token: %q", d)
	}
}

// generated are the resources SAM adds to the template it transforms.
var generated = []string{"CallbackFunctionUrl", "CallbackFunctionRole", "CopierFunctionRole", "ReconcilerFunctionRole"}

var pseudo = regexp.MustCompile(`^AWS::(AccountId|NoValue|NotificationARNs|Partition|Region|StackId|StackName|URLSuffix)$`)

func TestEveryReferenceResolves(t *testing.T) {
	tpl := load(t)
	known := func(name string) bool {
		return pseudo.MatchString(name) || tpl.at("Parameters", name).ok() || tpl.at("Resources", name).ok() || slices.Contains(generated, name)
	}
	condition := func(name string) {
		if !tpl.at("Conditions", name).ok() {
			t.Errorf("condition %s is not defined", name)
		}
	}
	tpl.walk(func(n node) {
		switch n.Tag {
		case "!Ref":
			if !known(n.Value) {
				t.Errorf("!Ref %s resolves to nothing", n.Value)
			}
		case "!GetAtt":
			if name, _, _ := strings.Cut(n.Value, "."); !known(name) {
				t.Errorf("!GetAtt %s resolves to nothing", n.Value)
			}
		case "!Sub":
			for _, m := range regexp.MustCompile(`\$\{([^}!]+)\}`).FindAllStringSubmatch(n.Value, -1) {
				if name, _, _ := strings.Cut(m[1], "."); !known(name) {
					t.Errorf("!Sub %s: ${%s} resolves to nothing", n.Value, m[1])
				}
			}
		case "!If":
			condition(n.items()[0].Value)
		case "!Condition":
			condition(n.Value)
		}
	})
	for _, section := range []string{"Resources", "Outputs"} {
		for _, name := range tpl.at(section).keys() {
			if c := tpl.at(section, name, "Condition"); c.ok() {
				condition(c.Value)
			}
		}
	}
	for _, name := range tpl.at("Resources").keys() {
		if typ := tpl.at("Resources", name, "Type").str(); !regexp.MustCompile(`^AWS::[A-Za-z0-9]+::[A-Za-z0-9]+$`).MatchString(typ) {
			t.Errorf("resource %s has type %q", name, typ)
		}
	}
}

func TestSamconfigHasTheDefaultSections(t *testing.T) {
	b, err := os.ReadFile("../../samconfig.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"[default.build.parameters]", "[default.deploy.parameters]", "[default.local_invoke.parameters]"} {
		if !strings.Contains(string(b), section) {
			t.Errorf("samconfig.toml lacks %s", section)
		}
	}
	if !strings.Contains(string(b), `env_vars = "events/env.json"`) {
		t.Error("local_invoke must read events/env.json")
	}
}
