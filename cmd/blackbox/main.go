// Command blackbox is the Blackbox SIP recording gateway.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "blackbox: under construction")
	os.Exit(2)
}
