package main

// The report: a table for people and one JSON line for programs. Each row is
// one target (and, for rpc, one rate); luachan's rows carry their ratio to
// the ceiling measured in the same run.

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one measurement. Latencies are in microseconds; a CPU figure of -1
// was not measured (a server at -addr without -pid).
type row struct {
	Target     string         `json:"target"`
	Op         string         `json:"op"`             // what Ops counts: delivery, reply, join, conn
	Rate       float64        `json:"rate,omitempty"` // rpc: offered pushes/s
	Ops        int64          `json:"ops"`
	Expected   int64          `json:"expected"`
	Lost       int64          `json:"lost"`
	Skipped    int64          `json:"skipped,omitempty"` // rpc: sends skipped, too many unanswered
	Failed     int64          `json:"failed,omitempty"`  // rpc: error replies; joins: failed joins
	OpsPerSec  float64        `json:"ops_per_s"`
	P50        float64        `json:"p50_us"`
	P99        float64        `json:"p99_us"`
	Max        float64        `json:"max_us"`
	ServerCPU  float64        `json:"server_cpu_us_per_op"`
	ClientCPU  float64        `json:"client_cpu_us_per_op"`
	RSSPerConn float64        `json:"server_rss_kib_per_conn,omitempty"`
	Elapsed    float64        `json:"elapsed_s"`
	Extra      map[string]any `json:"extra,omitempty"`
	Err        string         `json:"error,omitempty"`

	VsCeiling *ratios  `json:"vs_ceiling,omitempty"`
	VsLuachan *float64 `json:"vs_luachan,omitempty"` // intercept: ops/s over fast-laned luachan's
}

// ratios compare a luachan row with the ceiling's in the same run: above 1
// is more throughput, more CPU per operation, more latency.
type ratios struct {
	OpsPerSec  float64 `json:"ops_per_s,omitempty"`
	ServerCPU  float64 `json:"server_cpu_per_op,omitempty"`
	P99        float64 `json:"p99,omitempty"`
	RSSPerConn float64 `json:"server_rss_per_conn,omitempty"`
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// fill sets the rates, latencies and CPU costs from the raw figures.
func (r *row) fill(h histSnap, srvCPU time.Duration, srvOK bool, cliCPU time.Duration) {
	if r.Elapsed > 0 {
		r.OpsPerSec = float64(r.Ops) / r.Elapsed
	}
	r.P50, r.P99, r.Max = us(h.quantile(0.50)), us(h.quantile(0.99)), us(time.Duration(h.Max))
	r.ServerCPU, r.ClientCPU = -1, -1
	if r.Ops > 0 {
		if srvOK {
			r.ServerCPU = us(srvCPU) / float64(r.Ops)
		}
		r.ClientCPU = us(cliCPU) / float64(r.Ops)
	}
}

// compare sets each luachan row's ratios to the ceiling row of the same rate
// and each intercept row's throughput ratio to fast-laned luachan.
func compare(rows []row) {
	find := func(target string, rate float64) *row {
		for i := range rows {
			if rows[i].Target == target && rows[i].Rate == rate && rows[i].Err == "" {
				return &rows[i]
			}
		}
		return nil
	}
	div := func(a, b float64) float64 {
		if a < 0 || b <= 0 {
			return 0
		}
		return a / b
	}
	for i := range rows {
		r := &rows[i]
		if r.Target == "ceiling" || r.Err != "" {
			continue
		}
		if c := find("ceiling", r.Rate); c != nil {
			r.VsCeiling = &ratios{
				OpsPerSec:  div(r.OpsPerSec, c.OpsPerSec),
				ServerCPU:  div(r.ServerCPU, c.ServerCPU),
				P99:        div(r.P99, c.P99),
				RSSPerConn: div(r.RSSPerConn, c.RSSPerConn),
			}
		}
		if l := find("luachan", r.Rate); r.Target == "intercept" && l != nil {
			v := div(r.OpsPerSec, l.OpsPerSec)
			r.VsLuachan = &v
		}
	}
}

// report is the whole run, as the JSON line prints it.
type report struct {
	Mode   string         `json:"mode"`
	Params map[string]any `json:"params"`
	Rows   []row          `json:"results"`
	// MaxRate is, for rpc -search, each target's highest rate that met -p99.
	MaxRate map[string]float64 `json:"max_ok_rate,omitempty"`
}

// print writes the table, then the JSON line.
func (rep *report) print(w io.Writer) error {
	var params []string
	for _, k := range sortedKeys(rep.Params) {
		params = append(params, fmt.Sprintf("%s=%v", k, rep.Params[k]))
	}
	fmt.Fprintf(w, "luachan-bench %s  %s\n\n", rep.Mode, strings.Join(params, " "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	op := opName(rep.Mode)
	ops := plural[op]
	fmt.Fprintf(tw, "target\trate\t%s\tlost\t%s/s\tp50\tp99\tmax\tsrv µs/%s\tcli µs/%s\tKiB/conn\t×ceil rate\t×ceil cpu\t×ceil p99\t×ceil KiB\t\n", ops, ops, op, op)
	for _, r := range rep.Rows {
		if r.Err != "" {
			fmt.Fprintf(tw, "%s\t\terror: %s\t\t\t\t\t\t\t\t\t\t\t\t\t\n", r.Target, r.Err)
			continue
		}
		rate := "-"
		if r.Rate > 0 {
			rate = fmt.Sprintf("%.0f", r.Rate)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.Target, rate, r.Ops, r.Lost, fmtOpt(r.OpsPerSec, "%.0f"),
			fmtUs(r.P50), fmtUs(r.P99), fmtUs(r.Max),
			fmtCost(r.ServerCPU), fmtCost(r.ClientCPU), fmtOpt(r.RSSPerConn, "%.1f"),
			fmtRatio(r.VsCeiling, func(x *ratios) float64 { return x.OpsPerSec }),
			fmtRatio(r.VsCeiling, func(x *ratios) float64 { return x.ServerCPU }),
			fmtRatio(r.VsCeiling, func(x *ratios) float64 { return x.P99 }),
			fmtRatio(r.VsCeiling, func(x *ratios) float64 { return x.RSSPerConn }))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rep.Rows {
		if r.VsLuachan != nil {
			fmt.Fprintf(w, "intercept/luachan deliveries/s: %.2f\n", *r.VsLuachan)
		}
	}
	for _, r := range rep.Rows {
		if line := idleLine(r); line != "" {
			fmt.Fprintln(w, line)
		}
	}
	for _, t := range sortedKeys(rep.MaxRate) {
		fmt.Fprintf(w, "%s: highest rate with p99 under the limit: %.0f/s\n", t, rep.MaxRate[t])
	}
	fmt.Fprintln(w)
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

var plural = map[string]string{"delivery": "deliveries", "reply": "replies", "join": "joins", "conn": "conns"}

func fmtUs(v float64) string {
	switch {
	case v <= 0:
		return "-"
	case v >= 1e6:
		return fmt.Sprintf("%.2fs", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.2fms", v/1e3)
	}
	return fmt.Sprintf("%.0fµs", v)
}

func fmtCost(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtOpt(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func fmtRatio(r *ratios, f func(*ratios) float64) string {
	if r == nil || f(r) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", f(r))
}
