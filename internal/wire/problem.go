package wire

// Error bodies: RFC 9457 problem details and the usual JSON error shapes,
// read into a short one-line message. Fuzzed in problem_test.go.

import (
	"encoding/json"
	"mime"
	"strings"
)

// Problem holds RFC 9457 problem details. The root package re-exports it;
// its doc comment there is the one users read.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
}

// IsProblemJSON reports whether ct is application/problem+json.
func IsProblemJSON(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/problem+json"
}

// ParseProblem decodes RFC 9457 problem details; members of the wrong type
// are left empty. It returns nil when body is not a JSON object.
func ParseProblem(body []byte) *Problem {
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil {
		if _, typeErr := err.(*json.UnmarshalTypeError); !typeErr {
			return nil
		}
	}
	return &p
}

// ErrorMessage picks a short, one-line message from the usual JSON error
// shapes: problem details, OAuth (RFC 6749 §5.2), Google's error.message,
// an errors[] list of {code, message}, or a top-level message.
func ErrorMessage(p *Problem, body []byte) string {
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
		return OneLine(detail, maxMessage)
	case detail == "":
		return OneLine(title, maxMessage)
	}
	return OneLine(title+": "+detail, maxMessage)
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
			return OneLine(code+": "+m.Desc, maxMessage)
		}
		return OneLine(code, maxMessage)
	}
	var g struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(m.Error, &g) == nil && g.Message != "" {
		return OneLine(g.Message, maxMessage)
	}
	if m.Title != "" || m.Detail != "" {
		return problemMessage(m.Title, m.Detail)
	}
	if msg := m.listMessage(); msg != "" {
		return msg
	}
	return OneLine(m.Message, maxMessage)
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
			return OneLine(c+": "+e.Message, maxMessage)
		}
		return OneLine(e.Message, maxMessage)
	}
	return ""
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
