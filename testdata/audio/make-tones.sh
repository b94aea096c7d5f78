#!/bin/sh
# Regenerates the test tones (8 kHz, 16-bit, mono, 4 s, half scale), the
# short test prompt (0.8 s of 2 kHz) and the pcaps SIPp plays. sox's -D
# turns dither off, so the output is bit-for-bit reproducible;
# TestAudioFixtures measures the WAVs and checks the pcaps against the Go
# generator.
set -eu
cd "$(dirname "$0")"
for f in 440 1000; do
	sox -D -n -r 8000 -b 16 -c 1 -e signed-integer "tone-$f.wav" synth 4 sine "$f" vol 0.5
done
sox -D -n -r 8000 -b 16 -c 1 -e signed-integer prompt-beep.wav synth 0.8 sine 2000 vol 0.5
cd ../..
go test ./e2e -run TestAudioFixtures -update -count=1
