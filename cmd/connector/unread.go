package main

import (
	"io"
	"net/http"
)

// closeUnreadBodies has the connection closed after the answer to a request
// whose body the handler did not read to its end. net/http would otherwise
// read and discard up to 256 KiB of what is left after the answer, to reuse
// the connection: for a webhook POST refused before its body was read, or
// a request with a body on any other route (a handshake, /healthz, a 404,
// the redirect of an unclean path), that is reading before authentication
// and outside http.max_inflight_bodies.
func closeUnreadBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		body := &eofBody{ReadCloser: r.Body}
		r.Body = body
		next.ServeHTTP(&closeUnreadWriter{ResponseWriter: w, body: body}, r)
	})
}

// eofBody is a request body that records whether it was read to its end.
type eofBody struct {
	io.ReadCloser
	eof bool
}

func (b *eofBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// closeUnreadWriter asks for the connection to be closed when the answer's
// header is written before its request's body was read to its end.
type closeUnreadWriter struct {
	http.ResponseWriter
	body        *eofBody
	wroteHeader bool
}

func (w *closeUnreadWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		if !w.body.eof {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closeUnreadWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets an [http.ResponseController] reach the connection: the
// webhook handler sets its body's read deadline through one.
func (w *closeUnreadWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
