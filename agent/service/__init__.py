"""The service face: chat-ops, GitHub webhooks and the jobs API over a persistent queue."""
