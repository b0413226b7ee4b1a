package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	"ulp/fleet"
)

// reportHeader is the head of every line of a read-only action's --json
// output (ping, messages): the schema and the host's outcome.
type reportHeader struct {
	Schema string      `json:"schema"`
	Host   string      `json:"host"`
	State  fleet.State `json:"state"`
	Class  string      `json:"class"`
	Error  string      `json:"error,omitempty"`
}

func newReportHeader(schema string, h fleet.HostResult) reportHeader {
	r := reportHeader{Schema: schema, Host: h.Host, State: h.State, Class: h.Class()}
	if h.Err != nil {
		r.Error = h.Err.Error()
	}
	return r
}

// runReadOnly runs a read-only action (ping, status, messages) on every
// selected host, all at once with no canary, and prints the results with
// write.
func (a *app) runReadOnly(ctx context.Context, action fleet.Action, write func(io.Writer, *fleet.Result) error) error {
	p, err := a.plan(action, nil, "")
	if err != nil {
		return err
	}
	res, runErr := a.execute(ctx, p, nil)
	if res == nil {
		return runErr
	}
	return errors.Join(summaryError(res, runErr), write(a.stdout, res))
}

// hostOutput returns the output of a read-only action that prints per
// host (ping, messages): with --json one record a host, as record makes it,
// else text.
func (a *app) hostOutput(record func(fleet.HostResult) any, text func(io.Writer, *fleet.Result) error) func(io.Writer, *fleet.Result) error {
	return func(w io.Writer, res *fleet.Result) error {
		if !a.cfg.JSON {
			return text(w, res)
		}
		enc := json.NewEncoder(w)
		for _, h := range res.Hosts {
			if err := enc.Encode(record(h)); err != nil {
				return err
			}
		}
		return nil
	}
}
