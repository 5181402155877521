package http1

// Stricter lists what this package refuses and net/http's server accepts,
// each on purpose (the differential fuzzer holds every other refusal to
// net/http's): the Why of each such *Error starts with one of these.
var Stricter = []string{
	// RFC 9112 §2.2 lets a recipient take a bare LF as a line end; a proxy
	// that does while the app does not is a smuggling vector.
	"a line ends with a bare LF",
	// RFC 9112 §5.2 lets a server unfold it or refuse it; unfolding is
	// where two hops disagree.
	"obsolete line folding",
	// net/http keeps the first of identical lengths; two are a sign of a
	// message built to be read two ways.
	"Content-Length given more than once",
	// 19 digits pass net/http up to 2^63-1; nothing real sends 10^18 bytes.
	"Content-Length is not a number of bytes",
	// RFC 9112 §6.1: such framing is faulty; net/http ignores the field.
	"Transfer-Encoding in an HTTP/1.0 message",
	// RFC 9112 §6.1 allows it, with Content-Length to be removed; a hop that
	// removes and one that reads it disagree.
	"both Content-Length and Transfer-Encoding",
	// Bounds of the agent's own (net/http has only the head's).
	"more than ", "the request target is longer than ",
	// HTTP/1.2 and up: net/http serves them as 1.1.
	"HTTP version ",
	// "CONNECT  HTTP/1.0": an empty authority, which net/http takes.
	"no request target",
	// RFC 9112 §2.2 says a server SHOULD ignore it; clients do not send it.
	"an empty line before the start line",
}
