package limiter

// Cost is what one call takes, or what it used: requests, input tokens and output
// tokens. The engine counts "tokens" as input plus output.
type Cost struct {
	Requests     int64
	InputTokens  int64
	OutputTokens int64
}

// MaxUnits bounds any one amount the engine accepts, so that sums never overflow.
const MaxUnits = 1_000_000_000_000_000 // 1e15

// units returns how much of resource r the cost takes.
func (c Cost) units(r Resource) int64 {
	switch r {
	case Requests:
		return c.Requests
	case Tokens:
		return c.InputTokens + c.OutputTokens
	case InputTokens:
		return c.InputTokens
	case OutputTokens:
		return c.OutputTokens
	}
	return 0
}

func (c Cost) add(o Cost) Cost {
	return Cost{c.Requests + o.Requests, c.InputTokens + o.InputTokens, c.OutputTokens + o.OutputTokens}
}

func (c Cost) sub(o Cost) Cost {
	return Cost{c.Requests - o.Requests, c.InputTokens - o.InputTokens, c.OutputTokens - o.OutputTokens}
}

// normalized returns c with requests at least 1: every call is a request.
func (c Cost) normalized() Cost {
	if c.Requests < 1 {
		c.Requests = 1
	}
	return c
}
