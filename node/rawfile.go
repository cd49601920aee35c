package node

import (
	"io"
	"os"

	"github.com/ha2r/mip6testbed/softphone"
)

func openRaw(path string) (softphone.Source, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	return softphone.RawSource{R: f}, f, nil
}

func createRaw(path string) (softphone.Sink, io.Closer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return softphone.RawSink{W: f}, f, nil
}
