package oauthtest

// The device authorization grant (RFC 8628): the device authorization
// endpoint, the verification page a person visits, and the polling of the
// token endpoint, answered authorization_pending until the scripted
// person decides.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// DeviceInterval sets the polling interval of device codes (RFC 8628
// §3.2; default 1s), announced rounded up to whole seconds; zero announces
// none. A poll less than half the interval after the previous poll of the
// same device code (or after its device authorization) is answered
// slow_down, and that device code's interval grows by 5 seconds (§3.5).
// The half interval of slack absorbs the jitter of a client's timer.
func DeviceInterval(d time.Duration) Option { return func(s *Server) { s.device.interval = d } }

// DeviceCodeLifetime sets how long a device code can be polled for
// (expires_in, announced rounded up to whole seconds; default 10
// minutes). A poll after that is answered expired_token.
func DeviceCodeLifetime(d time.Duration) Option { return func(s *Server) { s.device.lifetime = d } }

// DeviceDecisionAfter makes the scripted person decide each device code by
// themselves once it has been answered authorization_pending polls times
// (zero: at its first poll), as [Server.Person] decides (approve by
// default). Without it, a device code waits for [Server.ApproveDevice],
// [Server.DenyDevice] or a visit to its verification_uri_complete; a
// negative polls restores that.
func DeviceDecisionAfter(polls int) Option { return func(s *Server) { s.device.decideAfter = polls } }

// ApproveDevice approves the device code that userCode stands for, as a
// person who typed it in would. The user code is compared ignoring case,
// spaces and dashes. It reports whether a device code was waiting for a
// decision under that user code.
func (s *Server) ApproveDevice(userCode string) bool { return s.decideUserCode(userCode, Approved) }

// DenyDevice refuses the device code that userCode stands for: its polls
// are answered access_denied. It reports what ApproveDevice reports.
func (s *Server) DenyDevice(userCode string) bool { return s.decideUserCode(userCode, Denied) }

// DeviceAuthorizations returns the form of every device authorization
// request the server accepted the client of, oldest first.
func (s *Server) DeviceAuthorizations() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.device.requests)
}

// DevicePolls returns how many device_code grant requests the token
// endpoint received from an authenticated client, whatever the answer.
func (s *Server) DevicePolls() int64 { return s.device.polls.Load() }

// SlowDowns returns how many polls were answered slow_down.
func (s *Server) SlowDowns() int64 { return s.device.slowDowns.Load() }

// deviceState is the device grant's: guarded by Server.mu, but for the
// counters.
type deviceState struct {
	interval, lifetime time.Duration
	decideAfter        int                    // -1: never by itself
	codes              map[string]*deviceCode // by device_code
	users              map[string]*deviceCode // by normalized user_code
	requests           []url.Values

	polls, slowDowns atomic.Int64
}

func newDeviceState() deviceState {
	return deviceState{interval: time.Second, lifetime: 10 * time.Minute, decideAfter: -1,
		codes: make(map[string]*deviceCode), users: make(map[string]*deviceCode)}
}

// deviceCode is a device authorization waiting for, or past, its person.
type deviceCode struct {
	client, scope string
	request       *http.Request // the device authorization request, for the person
	expiry        time.Time
	interval      time.Duration
	lastPoll      time.Time // or the device authorization
	pending       int       // polls answered authorization_pending
	asked         bool      // the person is deciding, or has
	decided       bool
	decision      Decision
	collected     bool // the tokens were issued
}

// serveDeviceAuthorization issues a device code and a user code to an
// authenticated client (RFC 8628 §3.1, §3.2).
func (s *Server) serveDeviceAuthorization(w http.ResponseWriter, r *http.Request) {
	client, _, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	req := r.Clone(context.Background()) // its PostForm, for the person
	req.Body = http.NoBody
	now := time.Now()
	d := &deviceCode{client: client, scope: r.PostFormValue("scope"), request: req, lastPoll: now}
	dc := "dc-" + randomHex()
	s.mu.Lock()
	d.expiry, d.interval = now.Add(s.device.lifetime), s.device.interval
	user := newUserCode()
	for s.device.users[normalizeUserCode(user)] != nil {
		user = newUserCode()
	}
	s.device.codes[dc], s.device.users[normalizeUserCode(user)] = d, d
	s.device.requests = append(s.device.requests, r.PostForm)
	s.mu.Unlock()
	verify := s.URL + "/device"
	resp := map[string]any{"device_code": dc, "user_code": user, "verification_uri": verify,
		"verification_uri_complete": verify + "?" + url.Values{"user_code": {user}}.Encode(),
		"expires_in":                wholeSeconds(d.expiry.Sub(now))}
	if d.interval > 0 {
		resp["interval"] = wholeSeconds(d.interval)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

// serveVerification is the page a person visits with a user code
// (verification_uri_complete): the scripted person decides there.
func (s *Server) serveVerification(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d := s.waitingLocked(r.URL.Query().Get("user_code"))
	if d != nil {
		d.asked = true
	}
	decide := s.personLocked()
	s.mu.Unlock()
	if d == nil {
		http.Error(w, "oauthtest: unknown or expired user code, or already decided", http.StatusNotFound)
		return
	}
	decision := decide(d.request)
	s.mu.Lock()
	if !d.decided {
		d.decided, d.decision = true, decision
	}
	s.mu.Unlock()
	if decision != Approved {
		http.Error(w, "oauthtest: refused; the device is told so", http.StatusForbidden)
		return
	}
	_, _ = fmt.Fprintln(w, "oauthtest: approved; you may return to your device")
}

// deviceGrant answers a poll (RFC 8628 §3.4, §3.5): tokens once the
// person approved, else the reason there are none yet or ever.
func (s *Server) deviceGrant(w http.ResponseWriter, r *http.Request, client string, p *proof) {
	s.device.polls.Add(1)
	dc := r.PostFormValue("device_code")
	s.decideDue(dc)
	s.mu.Lock()
	d := s.device.codes[dc]
	code, desc := s.pollLocked(d, client, time.Now())
	var fam *family
	if code == "" {
		fam = &family{client: client, scope: d.scope, resources: d.request.PostForm["resource"]}
	}
	s.mu.Unlock()
	if code != "" {
		oauthError(w, http.StatusBadRequest, code, desc)
		return
	}
	s.issue(w, grant{fam: fam, scope: d.scope, resources: fam.resources, client: client}, p, "")
}

// decideDue has the person decide device code dc when DeviceDecisionAfter
// says it is time; the person is asked without the lock held.
func (s *Server) decideDue(dc string) {
	s.mu.Lock()
	d := s.device.codes[dc]
	due := d != nil && !d.asked && s.device.decideAfter >= 0 && d.pending >= s.device.decideAfter
	if due {
		d.asked = true
	}
	decide := s.personLocked()
	s.mu.Unlock()
	if !due {
		return
	}
	decision := decide(d.request)
	s.mu.Lock()
	if !d.decided {
		d.decided, d.decision = true, decision
	}
	s.mu.Unlock()
}

// pollLocked records a poll of d by client and returns the error code and
// description to answer it with; an empty code when tokens are due (d is
// then collected).
func (s *Server) pollLocked(d *deviceCode, client string, now time.Time) (code, desc string) {
	switch {
	case d == nil:
		return "invalid_grant", "unknown device code"
	case d.client != client:
		return "invalid_grant", "device code was issued to another client"
	case d.collected:
		return "invalid_grant", "device code was already exchanged"
	case now.After(d.expiry):
		return "expired_token", "device code expired"
	case now.Sub(d.lastPoll) < d.interval/2:
		d.lastPoll = now
		d.interval += 5 * time.Second
		s.device.slowDowns.Add(1)
		return "slow_down", "polled faster than the interval; it grows by 5 seconds"
	}
	d.lastPoll = now
	switch {
	case !d.decided:
		d.pending++
		return "authorization_pending", "the person has not decided yet"
	case d.decision != Approved:
		return string(d.decision), "the person refused"
	}
	d.collected = true
	return "", ""
}

// decideUserCode records the person's decision for a user code.
func (s *Server) decideUserCode(userCode string, decision Decision) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.waitingLocked(userCode)
	if d != nil {
		d.asked, d.decided, d.decision = true, true, decision
	}
	return d != nil
}

// waitingLocked returns the device code of userCode when it is still
// waiting for a decision, nil otherwise.
func (s *Server) waitingLocked(userCode string) *deviceCode {
	d := s.device.users[normalizeUserCode(userCode)]
	if d == nil || d.asked || time.Now().After(d.expiry) {
		return nil
	}
	return d
}

// userCodeLetters are the consonants RFC 8628 §6.1 suggests: no vowels,
// so no words, and none easily confused.
const userCodeLetters = "BCDFGHJKLMNPQRSTVWXZ"

// newUserCode returns a user code such as "WDJB-MJHT".
func newUserCode() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	var code strings.Builder
	for i, c := range b {
		if i == 4 {
			code.WriteByte('-')
		}
		code.WriteByte(userCodeLetters[int(c)%len(userCodeLetters)])
	}
	return code.String()
}

// normalizeUserCode is what a person's typing of a user code is compared
// by: case, spaces and dashes do not count.
func normalizeUserCode(code string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, strings.ToUpper(code))
}

// wholeSeconds rounds d up to whole seconds.
func wholeSeconds(d time.Duration) int64 { return int64((d + time.Second - 1) / time.Second) }
