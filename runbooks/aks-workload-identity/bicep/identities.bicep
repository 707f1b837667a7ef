// The user-assigned identities of the lab: the cluster's own, one for the
// platform's add-ons (ExternalDNS, cert-manager), one for the sample workload.
param location string

resource clusterIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'aks-cluster-identity'
  location: location
}

resource infra 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'aks-infra-identity'
  location: location
}

resource app 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'aks-app-identity'
  location: location
}

output clusterIdentityId string = clusterIdentity.id
output clusterPrincipalId string = clusterIdentity.properties.principalId
output infraClientId string = infra.properties.clientId
output infraPrincipalId string = infra.properties.principalId
output appClientId string = app.properties.clientId
output appPrincipalId string = app.properties.principalId
