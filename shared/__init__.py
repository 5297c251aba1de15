"""What the issuer and the verifier both need: the claim schema, key loading, errors, serving."""
