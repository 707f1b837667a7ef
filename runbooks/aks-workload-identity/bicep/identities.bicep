// The two user-assigned identities of the lab: one for the platform's
// add-ons (cert-manager), one for the sample workload.
param location string

resource infra 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'aks-infra-identity'
  location: location
}

resource app 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'aks-app-identity'
  location: location
}

output infraClientId string = infra.properties.clientId
output infraPrincipalId string = infra.properties.principalId
output appClientId string = app.properties.clientId
output appPrincipalId string = app.properties.principalId
