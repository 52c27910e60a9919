package platform_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kiehook/kiehook/infra/platform"
)

func TestSignMatchesThePlatformsKnownVector(t *testing.T) {
	if got := platform.Sign("test-key", "fluxk_7f3a9c2e", "1764300000"); got != "FicixvKYdhX5/Z7eOFcOsxMG5ToCMQX1WkVX22if0BY=" {
		t.Errorf("Sign = %s", got)
	}
}

func TestFilesServeWhatDigestPredicts(t *testing.T) {
	files := platform.ServeFiles()
	defer files.Close()
	for _, name := range []string{"a.png", "b.jpg", "clip.100003.mp4", "song.mp3", "x.webp"} {
		t.Run(name, func(t *testing.T) {
			resp, err := http.Get(files.URL(name))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			sum := sha256.Sum256(b)
			u, _ := url.Parse(files.URL(name))
			size, digest := platform.Digest(u.Path)
			if int64(len(b)) != size || hex.EncodeToString(sum[:]) != digest {
				t.Errorf("served %d bytes %x, Digest says %d %s", len(b), sum, size, digest)
			}
			if http.DetectContentType(b) == "application/octet-stream" && name != "song.mp3" {
				t.Errorf("%s does not look like media", name)
			}
		})
	}
}

func TestBodyShapesEveryAPI(t *testing.T) {
	for _, api := range platform.APIs {
		t.Run(api, func(t *testing.T) {
			var v map[string]any
			if err := json.Unmarshal(platform.Body(api, "t_1", 200, []string{"u1", "u2"}), &v); err != nil || v["code"] != float64(200) {
				t.Errorf("%s: %v %v", api, v, err)
			}
		})
	}
}

func TestStagesSendSunoAsThePlatformDoes(t *testing.T) {
	urls := []string{"a1", "c1", "a2", "c2"}
	tests := []struct {
		name  string
		api   string
		code  int
		types []string
	}{
		{"a Suno success is text, first, then complete", "suno", 200, []string{"text", "first", "complete"}},
		{"a Suno failure is text, then error", "suno", 501, []string{"text", "error"}},
		{"any other API calls back once", "veo", 200, []string{"final"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stages := platform.Stages(tt.api, "t_1", tt.code, urls)
			var types []string
			for _, st := range stages {
				types = append(types, st.Type)
				var v struct {
					Data struct {
						CallbackType string
						Data         []struct {
							AudioURL string `json:"audio_url"`
						}
					}
				}
				if err := json.Unmarshal(st.Body, &v); err != nil {
					t.Fatal(err)
				}
				if tt.api == "suno" && v.Data.CallbackType != st.Type {
					t.Errorf("stage %s says callbackType %q", st.Type, v.Data.CallbackType)
				}
				done := 0
				for _, tr := range v.Data.Data {
					if tr.AudioURL != "" {
						done++
					}
				}
				if want := map[string]int{"text": 0, "first": 1, "complete": 2}[st.Type]; tt.api == "suno" && done != want {
					t.Errorf("stage %s carries %d finished tracks, want %d", st.Type, done, want)
				}
			}
			if strings.Join(types, ",") != strings.Join(tt.types, ",") {
				t.Errorf("stages %v, want %v", types, tt.types)
			}
		})
	}
}
