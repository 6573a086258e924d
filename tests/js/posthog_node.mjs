// posthog-node, unchanged, pointed at the system: what tests/system/test_tracker_libraries.py runs.
// node posthog_node.mjs <host> <project key> <anonymous id> <user id> <uuid of the purchase>
// Exits non-zero if the library reported an error.
import { PostHog } from 'posthog-node'

const [host, key, anon, user, purchaseId] = process.argv.slice(2)
const client = new PostHog(key, { host, flushAt: 1, flushInterval: 0 })
client.on('error', (error) => {
  console.error('posthog-node error:', error)
  process.exitCode = 1
})

client.capture({ distinctId: anon, event: 'node_viewed_pricing', properties: { page: '/pricing' } })
client.identify({ distinctId: user, properties: { $anon_distinct_id: anon, email: 'node@example.com' } })
client.alias({ distinctId: user, alias: `${user}-crm` })
client.capture({ distinctId: user, event: '$set', properties: { $set: { plan: 'team' } } })
client.capture({ distinctId: user, event: 'node_purchased', properties: { amount: 30 }, uuid: purchaseId })
await client.shutdown()
