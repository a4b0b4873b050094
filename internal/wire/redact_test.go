package wire

import "testing"

func TestScrubURLs(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		`Post "https://user:pw@idp.example/token?secret=1#f": dial tcp: refused`: `Post "https://idp.example/token": dial tcp: refused`,
		`no url here`:                       `no url here`,
		`a http://h/p?q b https://h2/x?y=z`: `a http://h/p b https://h2/x`,
		`broken ://`:                        `broken ://[REDACTED]`,
	}
	for in, want := range tests {
		if got := ScrubURLs(in); got != want {
			t.Errorf("ScrubURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzScrubURLs: scrubbing never panics, and scrubbed text is scrubbed
// for good: a second pass changes nothing. Seeds are in testdata/fuzz.
func FuzzScrubURLs(f *testing.F) {
	f.Add(`Post "https://user:pw@idp.example/token?secret=1#f": EOF`)
	f.Add(`://?://@://#`)
	f.Fuzz(func(t *testing.T, s string) {
		out := ScrubURLs(s)
		if again := ScrubURLs(out); again != out {
			t.Fatalf("scrubbing is not stable: %q became %q", out, again)
		}
	})
}
