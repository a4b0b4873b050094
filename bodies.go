package oauthtransport

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"mime"
	"strings"
	"time"
)

// Parsers of untrusted response bodies and tokens: problem details, the
// usual JSON error shapes, JWT expiry. Fuzzed in headers_test.go.

// Problem holds RFC 9457 problem details.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
}

func isProblemJSON(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/problem+json"
}

// parseProblem decodes RFC 9457 problem details; members of the wrong type
// are left empty. It returns nil when body is not a JSON object.
func parseProblem(body []byte) *Problem {
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil {
		if _, typeErr := err.(*json.UnmarshalTypeError); !typeErr {
			return nil
		}
	}
	return &p
}

// errorMessage picks a short, one-line message from the usual JSON error
// shapes: problem details, OAuth (RFC 6749 §5.2), Google's error.message,
// an errors[] list of {code, message}, or a top-level message.
func errorMessage(p *Problem, body []byte) string {
	if p != nil && (p.Title != "" || p.Detail != "") {
		return problemMessage(p.Title, p.Detail)
	}
	if !looksLikeObject(body) {
		return ""
	}
	var m errorShapes
	_ = json.Unmarshal(body, &m) // partial results are fine
	return m.message()
}

// maxMessage bounds a ResponseError's Message.
const maxMessage = 200

func problemMessage(title, detail string) string {
	switch {
	case title == "":
		return oneLine(detail, maxMessage)
	case detail == "":
		return oneLine(title, maxMessage)
	}
	return oneLine(title+": "+detail, maxMessage)
}

// errorShapes holds the members of the usual JSON error bodies.
type errorShapes struct {
	Title   string          `json:"title"`
	Detail  string          `json:"detail"`
	Error   json.RawMessage `json:"error"`
	Desc    string          `json:"error_description"`
	Message string          `json:"message"`
	Errors  []struct {
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
	} `json:"errors"`
}

func (m *errorShapes) message() string {
	var code string
	if json.Unmarshal(m.Error, &code) == nil && code != "" {
		if m.Desc != "" {
			return oneLine(code+": "+m.Desc, maxMessage)
		}
		return oneLine(code, maxMessage)
	}
	var g struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(m.Error, &g) == nil && g.Message != "" {
		return oneLine(g.Message, maxMessage)
	}
	if m.Title != "" || m.Detail != "" {
		return problemMessage(m.Title, m.Detail)
	}
	if msg := m.listMessage(); msg != "" {
		return msg
	}
	return oneLine(m.Message, maxMessage)
}

// listMessage is the first message of an errors[] list, with its code.
func (m *errorShapes) listMessage() string {
	for _, e := range m.Errors {
		if e.Message == "" {
			continue
		}
		var c string
		if json.Unmarshal(e.Code, &c) != nil {
			c = strings.Trim(string(e.Code), `" `)
		}
		if c != "" && len(c) < 64 {
			return oneLine(c+": "+e.Message, maxMessage)
		}
		return oneLine(e.Message, maxMessage)
	}
	return ""
}

// jwtExpiry returns the exp claim of a JWT access token, or the zero time
// when tok is not a JWT or has no usable exp. The signature is not checked:
// exp only schedules refreshes.
func jwtExpiry(tok string) time.Time {
	if len(tok) > 16<<10 {
		return time.Time{}
	}
	first := strings.IndexByte(tok, '.')
	if first <= 0 {
		return time.Time{}
	}
	rest := tok[first+1:]
	second := strings.IndexByte(rest, '.')
	if second <= 0 || strings.IndexByte(rest[second+1:], '.') >= 0 {
		return time.Time{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(rest[:second], "="))
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return time.Time{}
	}
	f, err := claims.Exp.Float64()
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1<<40 {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}

// looksLikeObject reports whether body starts, after white space, with "{".
func looksLikeObject(body []byte) bool {
	for _, c := range body {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}
