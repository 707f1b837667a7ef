// The lab's Azure resources: a resource group holding the virtual network,
// the user-assigned identities, the container registry and the AKS cluster
// with its OIDC issuer and workload identity enabled.
targetScope = 'subscription'

@description('Short name of the environment, e.g. dev')
param environment string

@description('Azure region for every resource')
param location string

param resourceGroupName string
param clusterName string

@description('Object id of the Entra ID group whose members administer the cluster')
param adminGroupObjectId string

@description('Kubernetes version; empty for the default version AKS offers in the region')
param kubernetesVersion string = ''
param nodeCount int = 3
param nodeVmSize string = 'Standard_D4ds_v5'

// Registry names are global: derive one that is the same on every re-run
// in this subscription and resource group, and unlikely anywhere else.
var registryName = 'acr${uniqueString(subscription().id, resourceGroupName)}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: {
    environment: environment
    workload: 'aks-workload-identity-lab'
  }
}

module identities 'identities.bicep' = {
  scope: rg
  name: 'identities'
  params: {
    location: location
  }
}

// The cluster's own identity gets Network Contributor on the node subnet
// before the cluster is created: AKS needs it in a virtual network it does
// not own (load balancers, IP configurations).
module network 'network.bicep' = {
  scope: rg
  name: 'network'
  params: {
    location: location
    name: 'vnet-${clusterName}'
    clusterPrincipalId: identities.outputs.clusterPrincipalId
  }
}

module registry 'registry.bicep' = {
  scope: rg
  name: 'registry'
  params: {
    location: location
    name: registryName
  }
}

module cluster 'cluster.bicep' = {
  scope: rg
  name: 'cluster'
  params: {
    location: location
    name: clusterName
    kubernetesVersion: kubernetesVersion
    nodeCount: nodeCount
    nodeVmSize: nodeVmSize
    nodeSubnetId: network.outputs.nodeSubnetId
    clusterIdentityId: identities.outputs.clusterIdentityId
    adminGroupObjectId: adminGroupObjectId
  }
}

output resourceGroupName string = rg.name
output clusterName string = cluster.outputs.name
output oidcIssuerUrl string = cluster.outputs.oidcIssuerUrl
output registryName string = registryName
output registryLoginServer string = registry.outputs.loginServer
output infraIdentityClientId string = identities.outputs.infraClientId
output appIdentityClientId string = identities.outputs.appClientId
