package quotad

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"sync"
)

// Bounds on what a usageBody holds.
const (
	// maxJSONBody: the usage of a larger JSON response is not read (the estimate
	// stands).
	maxJSONBody = 8 << 20
	// maxEventLine: a longer line of an event stream is skipped.
	maxEventLine = 4 << 20
)

// usageBody is the body of a successful response: it reads the usage as the
// body passes to the caller and reports the call once the body has been read to
// its end or closed. A JSON body is held until then (up to maxJSONBody); an event
// stream only one line at a time.
type usageBody struct {
	body   io.ReadCloser
	rep    *reporter
	stream bool

	mu sync.Mutex // guards what follows: Close may run while Read does
	// buf is the JSON body so far, or the event stream's current line.
	buf []byte
	// skip: the JSON body is too large, or the current line is too long.
	skip     bool
	seen     seenUsage
	errorTyp string // the type or code of an error event in the stream
	done     bool
}

func newUsageBody(resp *http.Response, rep *reporter) *usageBody {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return &usageBody{body: resp.Body, rep: rep, stream: mt == "text/event-stream"}
}

// Read reads the body, noting the usage it carries; at its end it reports.
func (b *usageBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return n, err
	}
	b.feed(p[:n])
	switch {
	case err == io.EOF:
		b.finish(OutcomeSuccess)
	case err != nil: // the connection broke mid-response
		b.finish(OutcomeFailed)
	}
	return n, err
}

// Close closes the body and reports, if that was not done yet: a body closed
// early was still answered by the provider.
func (b *usageBody) Close() error {
	err := b.body.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.finish(OutcomeSuccess)
	}
	return err
}

// feed takes the next bytes of the body.
func (b *usageBody) feed(p []byte) {
	if !b.stream {
		if b.skip || len(b.buf)+len(p) > maxJSONBody {
			b.skip, b.buf = true, nil
			return
		}
		b.buf = append(b.buf, p...)
		return
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			b.appendLine(p)
			return
		}
		b.appendLine(p[:i])
		if !b.skip {
			b.eventLine(b.buf)
		}
		b.buf, b.skip = b.buf[:0], false
		p = p[i+1:]
	}
}

// appendLine adds p to the current line of the stream, unless it grows too long.
func (b *usageBody) appendLine(p []byte) {
	if b.skip || len(b.buf)+len(p) > maxEventLine {
		b.skip, b.buf = true, b.buf[:0]
		return
	}
	b.buf = append(b.buf, p...)
}

// eventLine reads one line of a server-sent event stream: only data lines that
// mention usage or an error are decoded.
func (b *usageBody) eventLine(line []byte) {
	data, ok := bytes.CutPrefix(bytes.TrimSuffix(line, []byte("\r")), []byte("data:"))
	if !ok || !(bytes.Contains(data, []byte(`"usage"`)) || bytes.Contains(data, []byte(`"error"`))) {
		return
	}
	b.absorb(data)
}

// absorb reads the usage and error of one JSON object: a whole response, or
// one event of a stream. Usage is found at the top level (OpenAI chat and
// embeddings, Anthropic messages, message_delta events, Responses objects),
// under "message" (Anthropic's message_start, whose output count is not final)
// or under "response" (Responses events such as response.completed).
func (b *usageBody) absorb(obj []byte) {
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil {
		return
	}
	b.seen.merge(m["usage"], true)
	var nested struct {
		Usage json.RawMessage `json:"usage"`
	}
	if raw, ok := m["message"]; ok && json.Unmarshal(raw, &nested) == nil {
		b.seen.merge(nested.Usage, false)
	}
	if raw, ok := m["response"]; ok && json.Unmarshal(raw, &nested) == nil {
		b.seen.merge(nested.Usage, true)
	}
	if e := errorType(m["error"]); e != "" {
		b.errorTyp = e
	}
}

// finish reports the call with the usage seen; an error event in the stream
// makes it a failure.
func (b *usageBody) finish(outcome Outcome) {
	b.done = true
	if b.stream {
		if !b.skip && len(b.buf) > 0 { // a last line without its newline
			b.eventLine(b.buf)
		}
	} else if !b.skip {
		b.absorb(b.buf)
	}
	b.buf = nil
	var opts []ReportOption
	if b.errorTyp != "" {
		outcome = OutcomeFailed
		opts = append(opts, WithProviderError(b.errorTyp))
	}
	b.rep.report(b.seen.usage(b.rep.g.Cost), outcome, opts...)
}

// seenUsage is the usage a response has given so far; later values replace
// earlier ones, as a stream's counts are cumulative.
type seenUsage struct {
	in, out, cacheCreation, cacheRead int64
	hasIn, hasOut                     bool
}

// merge reads a usage object of any of the providers' shapes; withOutput false
// ignores its output count.
func (s *seenUsage) merge(raw json.RawMessage, withOutput bool) {
	if len(raw) == 0 {
		return
	}
	var u struct {
		PromptTokens             *int64 `json:"prompt_tokens"`
		CompletionTokens         *int64 `json:"completion_tokens"`
		InputTokens              *int64 `json:"input_tokens"`
		OutputTokens             *int64 `json:"output_tokens"`
		CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
		CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	}
	if json.Unmarshal(raw, &u) != nil {
		return
	}
	if v, ok := firstSet(u.PromptTokens, u.InputTokens); ok {
		s.in, s.hasIn = max(v, 0), true
	}
	if v, ok := firstSet(u.CompletionTokens, u.OutputTokens); ok && withOutput {
		s.out, s.hasOut = max(v, 0), true
	}
	if u.CacheCreationInputTokens != nil {
		s.cacheCreation = max(*u.CacheCreationInputTokens, 0)
	}
	if u.CacheReadInputTokens != nil {
		s.cacheRead = max(*u.CacheReadInputTokens, 0)
	}
}

// usage is the usage to report: what the response gave, and for what it did
// not give, the estimate quotad reserved.
func (s seenUsage) usage(estimate Cost) Usage {
	u := Usage{InputTokens: estimate.InputTokens, OutputTokens: estimate.OutputTokens}
	if s.hasIn {
		u.InputTokens = s.in
		u.CacheCreationInputTokens, u.CacheReadInputTokens = s.cacheCreation, s.cacheRead
	}
	if s.hasOut {
		u.OutputTokens = s.out
	}
	return u
}

// providerError returns the error type or code of an error response body
// ({"error": {"type": ..., "code": ...}}, as OpenAI and Anthropic send it), or "".
func providerError(body []byte) string {
	var m struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	return errorType(m.Error)
}

// errorType returns an error object's code, else its type: the code is the more
// specific (OpenAI's type "insufficient_quota" comes with the same code, and its
// spend-limit codes with other types).
func errorType(raw json.RawMessage) string {
	var e struct {
		Type string          `json:"type"`
		Code json.RawMessage `json:"code"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &e) != nil {
		return ""
	}
	var code string
	if json.Unmarshal(e.Code, &code) == nil && code != "" {
		return code
	}
	return e.Type
}
