//go:build !linux

package overlay

import (
	"context"
	"errors"
)

// WatchUnderlay is Linux-only (netlink); elsewhere handovers are requested
// with `node handover --to LINK`.
func (h *Host) WatchUnderlay(ctx context.Context) error {
	return errors.New("overlay: automatic underlay switching needs Linux netlink; use node handover --to LINK")
}
