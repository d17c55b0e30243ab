package web_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mimamori/mimamori/portal-api/web"
)

// TestJavaScript runs the unit tests of the web app's pure modules
// (static/lib: dates, stars, routing, retries) with node's own test runner,
// in Japan's time zone, and hands them web.Pages, which the route table
// must match.
func TestJavaScript(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (infra/setup.sh installs Debian's nodejs): the web app's unit tests in jstest/ did not run")
	}
	files, err := filepath.Glob(filepath.Join("jstest", "*.test.js"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no jstest/*.test.js (%v)", err)
	}
	pages, err := json.Marshal(web.Pages)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, append([]string{"--test"}, files...)...)
	cmd.Env = append(os.Environ(), "TZ=Asia/Tokyo", "MIMAMORI_PAGES="+string(pages))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test %v: %v\n%s", files, err, out)
	}
	t.Logf("%s", out)
}
