// env returns an environment variable the conformance script needs, or
// reports a setup failure in the scripts' output format and exits.
export const env = (name) => {
  const v = process.env[name]
  if (!v) {
    process.stdout.write(`FAIL setup: environment variable ${name} is not set\n`)
    process.exit(1)
  }
  return v
}
