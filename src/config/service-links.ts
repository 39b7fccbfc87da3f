/**
 * Kubernetes injects "service link" variables for every Service in the
 * namespace (https://kubernetes.io/docs/concepts/services-networking/service/#environment-variables,
 * the Docker-links compatible form). A Service named `livery` or
 * `livery-admin` yields names that start with LIVERY_, and Livery must not
 * take them for misspelt configuration. They are recognised by name *and*
 * by the shape of their value, so `LIVERY_PORT=8080` (meant as
 * LIVERY_LISTEN_PORT) is still reported as a typo.
 */

const ip = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*)$/
const port = /^\d{1,5}$/
const proto = /^(?:tcp|udp|sctp)$/
const link = /^(?:tcp|udp|sctp):\/\/(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$/

/** The suffix forms after `<SVC>_`, each with the shape its value always has. */
const forms: readonly (readonly [RegExp, RegExp])[] = [
  [/_SERVICE_HOST$/, ip],
  [/_SERVICE_PORT(?:_[A-Z0-9_]+)?$/, port],
  [/_PORT_\d{1,5}_(?:TCP|UDP|SCTP)_PROTO$/, proto],
  [/_PORT_\d{1,5}_(?:TCP|UDP|SCTP)_PORT$/, port],
  [/_PORT_\d{1,5}_(?:TCP|UDP|SCTP)_ADDR$/, ip],
  [/_PORT_\d{1,5}_(?:TCP|UDP|SCTP)$/, link],
  [/_PORT$/, link],
]

/** True when `name=value` is a variable Kubernetes injected for a Service, not configuration. */
export function isServiceLink (name: string, value: string): boolean {
  for (const [suffix, shape] of forms) {
    const m = suffix.exec(name)
    // A Service name is at least one DNS label: something must precede the suffix.
    if (m !== null && m.index > 0) return shape.test(value)
  }
  return false
}
