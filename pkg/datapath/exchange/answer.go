package exchange

import (
	"net/http"
	"strconv"
)

// The agent's own answers, in the app's place, are data: a Verdict says
// the status, the flag and why, and both HTTP paths (the loop's HTTP/1 and
// net/http's HTTP/2) write it with AnswerFields and AnswerBody, so every
// answer looks alike whichever path and whoever (a decoration, a failing
// app) made it.

// The answers to an app that fails, or to a client's body that does.
var (
	Unreachable     = Verdict{Status: http.StatusServiceUnavailable, Flag: UpstreamFailure, Why: "the app is not reachable"}
	ClosedEarly     = Verdict{Status: http.StatusServiceUnavailable, Flag: UpstreamReset, Why: "the app closed the connection before answering"}
	TimedOut        = Verdict{Status: http.StatusGatewayTimeout, Flag: UpstreamTimeout, Why: "the app did not answer within the request timeout"}
	InvalidResponse = Verdict{Status: http.StatusBadGateway, Flag: UpstreamReset, Why: "the app's response was not valid HTTP"}
	BadBody         = Verdict{Status: http.StatusBadRequest, Flag: Malformed, Why: "malformed or stalled request body"}
)

// Refusal is the answer to a request the agent will not forward, with why.
func Refusal(status int, why string) Verdict {
	return Verdict{Status: status, Flag: Malformed, Why: why}
}

// AnswerFields calls set with each header field of the answer v: a short
// plain-text body, the agent's name, Retry-After when v has it.
func AnswerFields(v Verdict, set func(name, value string)) {
	set("Content-Type", "text/plain; charset=utf-8")
	set("X-Content-Type-Options", "nosniff")
	set("Server", "veneer")
	if v.RetryAfter > 0 {
		set("Retry-After", strconv.Itoa(v.RetryAfter))
	}
}

// AnswerBody is the body of the answer v: why, in a line.
func AnswerBody(v Verdict) []byte { return []byte("veneer: " + v.Why + "\n") }

// Reply writes the answer v on net/http's path, its flag recorded.
func Reply(w http.ResponseWriter, r *http.Request, v Verdict) {
	From(r.Context()).AddFlag(v.Flag)
	h := w.Header()
	AnswerFields(v, h.Set)
	w.WriteHeader(v.Status)
	w.Write(AnswerBody(v))
}
