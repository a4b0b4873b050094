package oauthtransport_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// snippetImports maps the package names README snippets use to their
// import paths.
var snippetImports = map[string]string{
	"oauthtransport":    "github.com/oauthtransport/oauthtransport",
	"store":             "github.com/oauthtransport/oauthtransport/store",
	"redisstore":        "github.com/oauthtransport/oauthtransport/store/redisstore",
	"oauth2":            "golang.org/x/oauth2",
	"clientcredentials": "golang.org/x/oauth2/clientcredentials",
	"redis":             "github.com/redis/go-redis/v9",
	"context":           "context", "errors": "errors", "fmt": "fmt", "http": "net/http", "io": "io",
	"log": "log", "os": "os", "slog": "log/slog", "time": "time",
}

// TestReadmeSnippetsCompile builds every Go snippet of README.md: a whole
// program as it is, anything else as the body of func main with the
// imports it names, in a scratch module that uses this checkout.
func TestReadmeSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	snippets := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(snippets) == 0 {
		t.Fatal("no Go snippet found")
	}
	root, _ := filepath.Abs(".")
	dir := t.TempDir()
	goMod := "module readme\n\ngo 1.26\n\nrequire github.com/oauthtransport/oauthtransport v0.0.0\n\nreplace github.com/oauthtransport/oauthtransport => " + root + "\n"
	write(t, filepath.Join(dir, "go.mod"), goMod)
	sum, _ := os.ReadFile("go.sum")
	write(t, filepath.Join(dir, "go.sum"), string(sum))
	for i, m := range snippets {
		write(t, filepath.Join(dir, "s"+string(rune('a'+i)), "main.go"), asProgram(m[1]))
	}
	cmd := exec.Command("go", "build", "-mod=mod", "-o", os.DevNull, "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("a README snippet does not compile:\n%s", out)
	}
}

func asProgram(snippet string) string {
	if strings.HasPrefix(strings.TrimSpace(snippet), "package ") {
		return snippet
	}
	var imports []string
	for name, path := range snippetImports {
		if regexp.MustCompile(`\b` + name + `\.`).MatchString(snippet) {
			imports = append(imports, `"`+path+`"`)
		}
	}
	return "package main\n\nimport (\n\t" + strings.Join(imports, "\n\t") + "\n)\n\nfunc main() {\n" + snippet + "}\n"
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
