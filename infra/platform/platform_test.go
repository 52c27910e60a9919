package platform_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
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
