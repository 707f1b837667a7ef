// A virtual network with one subnet for the cluster's nodes.
param location string
param name string
param addressPrefix string = '10.40.0.0/16'
param nodeSubnetPrefix string = '10.40.0.0/22'

resource vnet 'Microsoft.Network/virtualNetworks@2024-01-01' = {
  name: name
  location: location
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'snet-aks-nodes'
        properties: {
          addressPrefix: nodeSubnetPrefix
        }
      }
    ]
  }
}

output nodeSubnetId string = vnet.properties.subnets[0].id
