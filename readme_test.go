package oauthtransport_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// snippetImports maps the package names the snippets of README.md and
// docs/*.md use to their import paths.
var snippetImports = map[string]string{
	"oauthtransport":    "github.com/oauthtransport/oauthtransport",
	"oauthtest":         "github.com/oauthtransport/oauthtransport/oauthtest",
	"store":             "github.com/oauthtransport/oauthtransport/store",
	"redisstore":        "github.com/oauthtransport/oauthtransport/store/redisstore",
	"sqlstore":          "github.com/oauthtransport/oauthtransport/store/sqlstore",
	"storetest":         "github.com/oauthtransport/oauthtransport/store/storetest",
	"sql":               "database/sql",
	"crypto":            "crypto",
	"tls":               "crypto/tls",
	"oauth2":            "golang.org/x/oauth2",
	"clientcredentials": "golang.org/x/oauth2/clientcredentials",
	"grpccreds":         "github.com/oauthtransport/oauthtransport/grpccreds",
	"grpc":              "google.golang.org/grpc",
	"credentials":       "google.golang.org/grpc/credentials",
	"redis":             "github.com/redis/go-redis/v9",
	"context":           "context", "errors": "errors", "fmt": "fmt", "http": "net/http", "io": "io",
	"log": "log", "os": "os", "slog": "log/slog", "time": "time", "filepath": "path/filepath", "testing": "testing",
}

// TestReadmeSnippetsCompile builds every Go snippet of README.md and of
// the pages in docs/: a whole program as it is, anything else as the body
// of func main with the imports it names, in a scratch module that uses
// this checkout. Each snippet gets a directory named after its page and
// its number, so the compiler's messages say where it is.
func TestReadmeSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	t.Parallel()
	pages, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("no page found in docs/")
	}
	dir := scratchModule(t)
	requireGRPCCreds(t, dir)
	seen := map[string]string{}
	for _, page := range append([]string{"README.md"}, pages...) {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		snippets := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(text), -1)
		if page == "README.md" && len(snippets) == 0 {
			t.Fatal("no Go snippet found in README.md")
		}
		for i, m := range snippets {
			name := snippetDir(page, i)
			if other, ok := seen[name]; ok {
				t.Fatalf("snippets of %s and %s would share the directory %s", other, page, name)
			}
			seen[name] = page
			write(t, filepath.Join(dir, name, "main.go"), asProgram(m[1]))
		}
	}
	if out, err := goCommand(dir, "build", "-o", os.DevNull, "./...").CombinedOutput(); err != nil {
		t.Fatalf("a snippet of README.md or docs/ does not compile (./PAGE_N is snippet N of PAGE):\n%s", out)
	}
}

// snippetDir names the directory of the i-th snippet of page:
// README_1, docs_many_accounts_2, ...
func snippetDir(page string, i int) string {
	name := strings.TrimSuffix(filepath.ToSlash(page), ".md")
	name = regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(name, "_")
	return fmt.Sprintf("%s_%d", name, i+1)
}

// TestReadmeIsShort keeps the README what a newcomer reads in two
// minutes: the reference lives in docs/.
func TestReadmeIsShort(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(readme), "\n"); n >= 150 {
		t.Errorf("README.md has %d lines, want fewer than 150: move reference material to a page in docs/", n)
	}
}

// TestDocsLinksResolve checks the links between the repository's pages:
// every relative link of README.md, the other top-level pages and docs/*.md
// names a file that exists (and, with a #fragment, a heading of it), and
// every link of doc.go to a page of the repository names one that exists.
func TestDocsLinksResolve(t *testing.T) {
	t.Parallel()
	pages, _ := filepath.Glob("docs/*.md")
	pages = append([]string{"README.md", "CHANGELOG.md", "CONTRIBUTING.md", "SECURITY.md"}, pages...)
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, page := range pages {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(text), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, fragment, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
			}
			checkLink(t, page, target, path, fragment)
		}
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	repo := regexp.MustCompile(`https://github\.com/oauthtransport/oauthtransport/blob/main/([^\s)\]]+)`)
	found := repo.FindAllStringSubmatch(string(doc), -1)
	if len(found) == 0 {
		t.Error("doc.go links to no page of docs/")
	}
	for _, m := range found {
		file, fragment, _ := strings.Cut(m[1], "#")
		checkLink(t, "doc.go", m[0], file, fragment)
	}
}

// checkLink reports a link of page whose file does not exist or whose
// fragment names no heading of that file (as GitHub makes their anchors).
func checkLink(t *testing.T, page, target, path, fragment string) {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%s links to %s: %v", page, target, err)
		return
	}
	if fragment == "" {
		return
	}
	for _, h := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(text), -1) {
		anchor := strings.ToLower(regexp.MustCompile(`[^\p{L}\p{N} _-]`).ReplaceAllString(h[1], ""))
		if strings.ReplaceAll(anchor, " ", "-") == fragment {
			return
		}
	}
	t.Errorf("%s links to %s: %s has no heading for #%s", page, target, path, fragment)
}

// TestExamplesRunInAnEmptyModule copies each example, as a user would,
// into a module of its own that uses this checkout, and runs it.
func TestExamplesRunInAnEmptyModule(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	t.Parallel()
	dirs, _ := filepath.Glob("examples/*")
	for _, ex := range dirs {
		if _, err := os.Stat(filepath.Join(ex, "go.mod")); err == nil {
			continue // a module of its own, with its own tests
		}
		t.Run(filepath.Base(ex), func(t *testing.T) {
			t.Parallel()
			if _, err := exec.LookPath("redis-server"); err != nil && filepath.Base(ex) == "redisfleet" && os.Getenv("CI") != "true" {
				t.Skip("needs redis-server (apt-get install redis-server)")
			}
			dir := scratchModule(t)
			files, _ := filepath.Glob(filepath.Join(ex, "*.go"))
			for _, f := range files {
				src, _ := os.ReadFile(f)
				write(t, filepath.Join(dir, filepath.Base(f)), string(src))
			}
			cmd := goCommand(dir, "run", ".")
			cmd.Env = append(cmd.Env, "REDIS_ADDR=") // the Redis example starts its own
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s does not run on its own:\n%s", ex, out)
			}
		})
	}
}

// scratchModule makes an empty module that requires this checkout of the
// SDK, as a user's module would require a release.
func scratchModule(t *testing.T) string {
	root, _ := filepath.Abs(".")
	dir := t.TempDir()
	write(t, filepath.Join(dir, "go.mod"), "module scratch\n\ngo 1.26\n\nrequire github.com/oauthtransport/oauthtransport v0.0.0\n\n"+
		"replace github.com/oauthtransport/oauthtransport => "+root+"\n")
	sum, _ := os.ReadFile("go.sum")
	write(t, filepath.Join(dir, "go.sum"), string(sum))
	return dir
}

// requireGRPCCreds makes the scratch module in dir require this
// checkout's grpccreds module too, for the snippets about gRPC.
func requireGRPCCreds(t *testing.T, dir string) {
	root, _ := filepath.Abs("grpccreds")
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := os.ReadFile(filepath.Join(dir, "go.sum"))
	more, _ := os.ReadFile(filepath.Join("grpccreds", "go.sum"))
	write(t, filepath.Join(dir, "go.mod"), string(mod)+"require github.com/oauthtransport/oauthtransport/grpccreds v0.0.0\n\n"+
		"replace github.com/oauthtransport/oauthtransport/grpccreds => "+root+"\n")
	write(t, filepath.Join(dir, "go.sum"), string(sum)+string(more))
}

func goCommand(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("go", append(args[:1:1], append([]string{"-mod=mod"}, args[1:]...)...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	return cmd
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
	head := "package main\n\nimport (\n\t" + strings.Join(imports, "\n\t") + "\n)\n\n"
	if strings.HasPrefix(strings.TrimLeft(snippet, "/ \t"), "func ") || strings.Contains(snippet, "\nfunc ") {
		return head + snippet + "\nfunc main() {}\n" // declarations, as they are
	}
	return head + "func main() {\n" + snippet + "}\n\n" +
		"func lookUpRefreshToken(string) (string, error) { return \"\", nil } // what README snippets leave to the reader\n"
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
