package kie

import "testing"

func TestEveryDocumentedStateMaps(t *testing.T) {
	flag := func(n int) *int { return &n }
	tests := []struct {
		name string
		got  State
		want State
	}{
		{"successFlag 0 is running", flagState(flag(0), ""), Running},
		{"successFlag 1 succeeded", flagState(flag(1), ""), Succeeded},
		{"successFlag 2 (creating the task failed) failed", flagState(flag(2), ""), Failed},
		{"successFlag 3 (generation failed) failed", flagState(flag(3), ""), Failed},
		{"4o GENERATING is running", flagState(nil, "GENERATING"), Running},
		{"4o SUCCESS succeeded", flagState(nil, "SUCCESS"), Succeeded},
		{"4o CREATE_TASK_FAILED failed", flagState(nil, "CREATE_TASK_FAILED"), Failed},
		{"4o GENERATE_FAILED failed", flagState(nil, "GENERATE_FAILED"), Failed},
		{"Runway wait is running", wordState("wait"), Running},
		{"Runway queueing is running", wordState("queueing"), Running},
		{"Market waiting is running", wordState("waiting"), Running},
		{"Market queuing is running", wordState("queuing"), Running},
		{"generating is running", wordState("generating"), Running},
		{"success succeeded", wordState("success"), Succeeded},
		{"fail failed", wordState("fail"), Failed},
		{"Suno PENDING is running", sunoState("PENDING"), Running},
		{"Suno TEXT_SUCCESS is running", sunoState("TEXT_SUCCESS"), Running},
		{"Suno FIRST_SUCCESS is running", sunoState("FIRST_SUCCESS"), Running},
		{"Suno SUCCESS succeeded", sunoState("SUCCESS"), Succeeded},
		{"Suno CREATE_TASK_FAILED failed", sunoState("CREATE_TASK_FAILED"), Failed},
		{"Suno GENERATE_AUDIO_FAILED failed", sunoState("GENERATE_AUDIO_FAILED"), Failed},
		{"Suno CALLBACK_EXCEPTION failed", sunoState("CALLBACK_EXCEPTION"), Failed},
		{"Suno SENSITIVE_WORD_ERROR failed", sunoState("SENSITIVE_WORD_ERROR"), Failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestParseRecordRefusals(t *testing.T) {
	for _, tt := range []struct{ name, api, body string }{
		{"a body that is not JSON", APIVeo, `{`},
		{"a task the platform does not know", APIVeo, `{"code":404,"msg":"task not found"}`},
		{"an API without an endpoint", APIUnknown, `{"code":200,"data":{}}`},
		{"a market resultJson that is not JSON", APIMarket, `{"code":200,"data":{"state":"success","resultJson":"{nope"}}`},
	} {
		t.Run(tt.name+" is an error", func(t *testing.T) {
			if _, err := ParseRecord(tt.api, []byte(tt.body)); err == nil {
				t.Error("want an error")
			}
		})
	}
}
