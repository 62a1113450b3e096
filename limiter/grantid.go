package limiter

import (
	"fmt"
	"strconv"
	"strings"
)

// GrantID names a grant: the pool's incarnation and the grant's sequence in it. Its
// text form is "<epoch hex>-<sequence>", e.g. "9f3a0c1e-42".
type GrantID struct {
	Epoch uint32
	Seq   uint64
}

func (id GrantID) String() string {
	return strconv.FormatUint(uint64(id.Epoch), 16) + "-" + strconv.FormatUint(id.Seq, 10)
}

// ParseGrantID parses the text form of a GrantID.
func ParseGrantID(s string) (GrantID, error) {
	epoch, seq, ok := strings.Cut(s, "-")
	e, err1 := strconv.ParseUint(epoch, 16, 32)
	n, err2 := strconv.ParseUint(seq, 10, 64)
	if !ok || err1 != nil || err2 != nil || n == 0 {
		return GrantID{}, fmt.Errorf("grant_id %q is not of the form <epoch hex>-<sequence>", s)
	}
	return GrantID{Epoch: uint32(e), Seq: n}, nil
}
