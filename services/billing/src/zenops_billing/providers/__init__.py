"""Payment providers: checkout (Razorpay orders, Stripe Checkout sessions), webhook
verification and storage, settlement (top-ups, invoice payments), refunds and disputes."""
