package protocol

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

const (
	// iso8601Layout is what AWS itself sends: UTC with milliseconds.
	iso8601Layout = "2006-01-02T15:04:05.000Z"
	// rfc822Layout is the HTTP date format that the rfc822 trait means.
	rfc822Layout = "Mon, 02 Jan 2006 15:04:05 GMT"
)

func formatTimestamp(t time.Time, format string) string {
	t = t.UTC()
	switch format {
	case TimestampUnix:
		if t.Nanosecond() == 0 {
			return strconv.FormatInt(t.Unix(), 10)
		}
		return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)
	case TimestampRFC822:
		return t.Format(rfc822Layout)
	default:
		return t.Format(iso8601Layout)
	}
}

// parseTimestamp accepts exactly the given format. ISO 8601 means RFC 3339
// with optional fractional seconds and any offset, which covers what
// botocore and the Go SDKs send.
func parseTimestamp(s, format string) (time.Time, error) {
	switch format {
	case TimestampUnix:
		return parseEpoch(s)
	case TimestampRFC822:
		t, err := time.Parse(time.RFC1123, s)
		if err != nil {
			t, err = time.Parse(time.RFC1123Z, s)
		}
		return t.UTC(), err
	default:
		t, err := time.Parse(time.RFC3339Nano, s)
		return t.UTC(), err
	}
}

// parseEpoch parses decimal seconds exactly, without a round trip through
// float64 that would blur the milliseconds.
func parseEpoch(s string) (time.Time, error) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || whole == "-" || (hasFrac && (frac == "" || len(frac) > 9)) {
		return time.Time{}, errors.New("not epoch seconds")
	}
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	var nsec int64
	if hasFrac {
		for _, c := range frac {
			if c < '0' || c > '9' {
				return time.Time{}, errors.New("not epoch seconds")
			}
		}
		nsec, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if strings.HasPrefix(whole, "-") {
			nsec = -nsec
		}
	}
	return time.Unix(sec, nsec).UTC(), nil
}

// formatFloat spells the non-finite values as AWS protocols do and avoids
// exponents in the usual range, as JavaScript and Python do.
func formatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.FormatFloat(f, 'e', -1, bits)
	}
	return strconv.FormatFloat(f, 'f', -1, bits)
}

// parseFloat accepts decimal numbers and the three AWS spellings of the
// non-finite values, but not the extra spellings strconv allows (inf, nan,
// hex, underscores), so that typos are reported rather than guessed at.
func parseFloat(s string, bits int) (float64, error) {
	switch s {
	case "NaN":
		return math.NaN(), nil
	case "Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	if s == "" || strings.ContainsAny(s, "xX_pPiInN") {
		return 0, errors.New("not a decimal number")
	}
	return strconv.ParseFloat(s, bits)
}

func parseBool(s string) (bool, error) {
	switch {
	case strings.EqualFold(s, "true"):
		return true, nil
	case strings.EqualFold(s, "false"):
		return false, nil
	}
	return false, errors.New("not a boolean")
}
